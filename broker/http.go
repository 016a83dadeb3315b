package broker

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"go.uber.org/zap"
)

func (s *Server) startHTTP() error {
	mux, err := s.mux()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if err != nil {
		return err
	}
	limit := s.cfg.Limits.MaxConnections
	if c := connectionCap(s.natsConns); c > 0 && limit > c {
		log := s.log.Warn // a limit asked for
		if limit == defaultMaxConnections() {
			log = s.log.Debug
		}
		log("connection limit lowered to keep descriptors for the node's own files and connections",
			zap.Int("maxConnections", limit), zap.Int("lowered", c), zap.Int("openFilesLimit", openFilesLimit()))
		limit = c
	}
	s.limit = newLimitListener(ln, limit, s.log, mux)
	s.ln, ln = s.limit, s.limit
	s.httpSrv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		// Idle keep-alive connections give their descriptors back.
		IdleTimeout:    60 * time.Second,
		MaxHeaderBytes: s.cfg.Limits.MaxHeaderBytes,
		ErrorLog:       zap.NewStdLog(s.log.Named("http")),
	}
	go func() {
		var err error
		if s.cfg.TLSCertFile != "" {
			err = s.httpSrv.ServeTLS(ln, s.cfg.TLSCertFile, s.cfg.TLSKeyFile)
		} else {
			err = s.httpSrv.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server stopped", zap.Error(err))
		}
		s.serveErr <- err
	}()
	if s.cfg.PprofAddr != "" {
		pm := http.NewServeMux()
		pm.HandleFunc("/debug/pprof/", pprof.Index)
		pm.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		pm.HandleFunc("/debug/pprof/profile", pprof.Profile)
		pm.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		pm.HandleFunc("/debug/pprof/trace", pprof.Trace)
		pln, err := net.Listen("tcp", s.cfg.PprofAddr)
		if err != nil {
			return err
		}
		s.pprof = &http.Server{Handler: pm, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = s.pprof.Serve(pln) }()
	}
	return nil
}

// shutdownHTTP stops accepting, closes WebSockets with "going away" and
// waits for requests in flight.
func (s *Server) shutdownHTTP(ctx context.Context) error {
	s.drain() // an import in flight stops and says so (importNDJSON)
	s.closeWebSockets()
	err := s.httpSrv.Shutdown(ctx)
	if err != nil {
		_ = s.httpSrv.Close()
	}
	<-s.serveErr
	return err
}

// BaseURL turns a listen address into the http URL a local client uses.
func BaseURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

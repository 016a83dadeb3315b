package broker

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/presenced/presenced/broker/dashboard"
	"github.com/presenced/presenced/membership"
	"go.uber.org/zap"
)

// routes builds the HTTP routing table.
func (s *Server) routes() (*http.ServeMux, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", s.metricsHandler())

	read, write := membership.ScopeMembershipRead, membership.ScopeMembershipWrite
	mux.Handle("GET /v1/users", s.api(read, s.listUsers))
	mux.Handle("POST /v1/users", s.api(write, s.createUser))
	mux.Handle("GET /v1/users/{id}", s.api(read, s.getUser))
	mux.Handle("PATCH /v1/users/{id}", s.api(write, s.patchUser))
	mux.Handle("DELETE /v1/users/{id}", s.api(write, s.deleteUser))
	mux.Handle("GET /v1/users/{id}/groups", s.api(read, s.listUserGroups))
	mux.Handle("PUT /v1/users/{id}/roles/{role}", s.api(write, s.setUserRole(true)))
	mux.Handle("DELETE /v1/users/{id}/roles/{role}", s.api(write, s.setUserRole(false)))
	mux.Handle("GET /v1/groups", s.api(read, s.listGroups))
	mux.Handle("POST /v1/groups", s.api(write, s.createGroup))
	mux.Handle("GET /v1/groups/{id}", s.api(read, s.getGroup))
	mux.Handle("PATCH /v1/groups/{id}", s.api(write, s.patchGroup))
	mux.Handle("DELETE /v1/groups/{id}", s.api(write, s.deleteGroup))
	mux.Handle("GET /v1/groups/{id}/members", s.api(read, s.listMembers))
	mux.Handle("PUT /v1/groups/{id}/members/{user}", s.api(write, s.putMember))
	mux.Handle("DELETE /v1/groups/{id}/members/{user}", s.api(write, s.deleteMember))
	mux.Handle("GET /v1/roles", s.api(read, s.listRoles))
	mux.Handle("PUT /v1/roles/{id}", s.api(write, s.putRole))
	mux.Handle("DELETE /v1/roles/{id}", s.api(write, s.deleteRole))
	mux.Handle("GET /v1/tokens", s.api(membership.ScopeTokens, s.listTokens))
	mux.Handle("POST /v1/tokens", s.api(membership.ScopeTokens, s.createToken))
	mux.Handle("DELETE /v1/tokens/{id}", s.api(membership.ScopeTokens, s.revokeToken))
	mux.Handle("POST /v1/import", s.api(write, s.importNDJSON))
	s.presenceRoutes(mux)
	s.hooks.Routes(mux, func(scope string, h func(http.ResponseWriter, *http.Request) error) http.Handler {
		return s.api(scope, h)
	})
	mux.Handle("GET /dashboard/", dashboard.Handler())
	if err := s.compatRoutes(mux); err != nil {
		return nil, err
	}

	mux.Handle("/v1/", s.api("", func(w http.ResponseWriter, r *http.Request) error {
		return &apiError{http.StatusNotFound, codeNotFound, "no such endpoint: " + r.Method + " " + r.URL.Path}
	}))
	return mux, nil
}

func (s *Server) startHTTP() error {
	mux, err := s.routes()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if err != nil {
		return err
	}
	s.ln = ln
	s.httpSrv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    s.cfg.Limits.MaxHeaderBytes,
		ErrorLog:          zap.NewStdLog(s.log.Named("http")),
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
	s.closeWebSockets()
	err := s.httpSrv.Shutdown(ctx)
	if err != nil {
		_ = s.httpSrv.Close()
	}
	<-s.serveErr
	return err
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 once NATS and JetStream answer and the indexes are
// loaded, 503 otherwise.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	checks := map[string]string{}
	ok := s.isReady.Load()
	if !ok {
		checks["startup"] = "not finished"
	}
	if s.nc == nil || !s.nc.IsConnected() {
		ok = false
		checks["nats"] = "disconnected"
	} else {
		checks["nats"] = "ok"
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if _, err := s.js.AccountInfo(ctx); err != nil {
			ok = false
			checks["jetstream"] = err.Error()
		} else {
			checks["jetstream"] = "ok"
		}
	}
	if s.engine != nil {
		if err := s.engine.Err(); err != nil {
			ok = false
			checks["presence"] = err.Error()
		} else {
			checks["presence"] = "ok"
		}
	}
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]any{"ready": ok, "checks": checks})
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

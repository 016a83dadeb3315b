package broker

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
)

// startNATS starts the embedded nats-server with JetStream, or returns nil
// when an external NATS is configured.
func (s *Server) startNATS() (*server.Server, error) {
	if s.cfg.NATSURL != "" {
		return nil, nil
	}
	opts := &server.Options{
		ServerName: s.cfg.NodeName,
		JetStream:  true,
		StoreDir:   filepath.Join(s.cfg.DataDir, "jetstream"),
		NoSigs:     true,
		NoLog:      true,
		// Presence writes are small and frequent; the defaults of a
		// general-purpose server are fine otherwise.
		MaxPayload: 1 << 20,
	}
	if s.cfg.NATSListen != "" {
		host, port, err := splitHostPort(s.cfg.NATSListen)
		if err != nil {
			return nil, fmt.Errorf("%w: --nats-listen: %v", ErrConfig, err)
		}
		opts.Host, opts.Port = host, port
	} else if s.cfg.ClusterName != "" {
		// DontListen would also stop routing: keep the client port on a
		// random loopback port instead.
		opts.Host, opts.Port = "127.0.0.1", -1
	} else {
		opts.DontListen = true
	}
	if s.cfg.ClusterName != "" {
		host, port, err := splitHostPort(s.cfg.ClusterListen)
		if err != nil {
			return nil, fmt.Errorf("%w: --cluster-listen: %v", ErrConfig, err)
		}
		opts.Cluster.Name = s.cfg.ClusterName
		opts.Cluster.Host, opts.Cluster.Port = host, port
		for _, r := range s.cfg.Routes {
			opts.Routes = append(opts.Routes, server.RoutesFromStr(r)...)
		}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("broker: nats-server: %w", err)
	}
	ns.SetLoggerV2(natsLogger{s.log.Named("nats").Sugar()}, false, false, false)
	ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("broker: nats-server did not become ready")
	}
	return ns, nil
}

// connectNATS opens the broker's client connection: in-process to the
// embedded server, or over the network to an external one.
func (s *Server) connectNATS(ns *server.Server) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name("presenced " + s.cfg.NodeName),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				s.log.Warn("nats disconnected", zap.Error(err))
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { s.log.Info("nats reconnected") }),
	}
	if ns != nil {
		opts = append(opts, nats.InProcessServer(ns))
		return nats.Connect("", opts...)
	}
	if s.cfg.NATSCredsFile != "" {
		opts = append(opts, nats.UserCredentials(s.cfg.NATSCredsFile))
	}
	if s.cfg.NATSCAFile != "" {
		opts = append(opts, nats.RootCAs(s.cfg.NATSCAFile))
	}
	if s.cfg.NATSCertFile != "" {
		opts = append(opts, nats.ClientCert(s.cfg.NATSCertFile, s.cfg.NATSKeyFile))
	}
	return nats.Connect(s.cfg.NATSURL, opts...)
}

func splitHostPort(hp string) (string, int, error) {
	host, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, err
	}
	if port == 0 {
		port = -1 // a random port, as nats-server spells it
	}
	return host, port, nil
}

// natsLogger forwards nats-server's logs to zap.
type natsLogger struct{ l *zap.SugaredLogger }

func (n natsLogger) Noticef(format string, v ...any) { n.l.Debugf(format, v...) }
func (n natsLogger) Warnf(format string, v ...any)   { n.l.Warnf(format, v...) }
func (n natsLogger) Fatalf(format string, v ...any)  { n.l.Errorf(format, v...) }
func (n natsLogger) Errorf(format string, v ...any)  { n.l.Errorf(format, v...) }
func (n natsLogger) Debugf(format string, v ...any)  { n.l.Debugf(format, v...) }
func (n natsLogger) Tracef(format string, v ...any)  {}

// waitJetStream returns once JetStream answers this node. In a cluster,
// requests sent before the server has found the meta leader get no answer
// at all, so ask in short attempts until one is answered.
func (s *Server) waitJetStream(ctx context.Context) error {
	for {
		actx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		_, err := s.js.AccountInfo(actx)
		cancel()
		if err == nil && (s.ns == nil || s.ns.JetStreamIsCurrent()) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("broker: JetStream not available: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

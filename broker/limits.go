package broker

import "time"

// Limits bound what one client may cost. Zero fields take the defaults below.
type Limits struct {
	// MaxBodyBytes bounds JSON request bodies (default 1 MiB).
	MaxBodyBytes int64
	// MaxImportBytes bounds an NDJSON import body (default 1 GiB).
	MaxImportBytes int64
	// MaxHeaderBytes bounds request headers (default 64 KiB).
	MaxHeaderBytes int
	// MaxFrameBytes bounds one WebSocket frame from a client (default 64 KiB).
	MaxFrameBytes int64
	// MaxSubscriptions bounds groups one WebSocket may subscribe (default 1000).
	MaxSubscriptions int
	// OpsPerSecond bounds ops one WebSocket may send (default 50, burst 100).
	OpsPerSecond float64
	// WriteQueue bounds pending batches per WebSocket before it is cut as a
	// slow consumer (default 256).
	WriteQueue int
	// IdleTimeout closes a WebSocket that answers no ping for this long
	// (default 60s); pings go out every third of it.
	IdleTimeout time.Duration
	// MaxConnections bounds the open HTTP and WebSocket connections; past
	// it a new connection is answered 503 at once (/healthz 200) and
	// closed (default: the open files limit less 100, kept for the store).
	MaxConnections int
	// RESTRate and RESTBurst limit REST calls per token and per client IP
	// (default 100/s, burst 200; negative disables).
	RESTRate  float64
	RESTBurst int
}

func (l *Limits) setDefaults() {
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = 1 << 20
	}
	if l.MaxImportBytes <= 0 {
		l.MaxImportBytes = 1 << 30
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = 64 << 10
	}
	if l.MaxFrameBytes <= 0 {
		l.MaxFrameBytes = 64 << 10
	}
	if l.MaxSubscriptions <= 0 {
		l.MaxSubscriptions = 1000
	}
	if l.OpsPerSecond <= 0 {
		l.OpsPerSecond = 50
	}
	if l.WriteQueue <= 0 {
		l.WriteQueue = 256
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = 60 * time.Second
	}
	if l.RESTRate == 0 {
		l.RESTRate = 100
	}
	if l.RESTBurst <= 0 {
		l.RESTBurst = 200
	}
	if l.MaxConnections <= 0 {
		l.MaxConnections = defaultMaxConnections()
	}
}

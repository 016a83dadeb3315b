package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/presenced/presenced/membership"
)

// importIdle is how long an import or an export waits for its client to
// send or take more: a long import may outlast any whole-request timeout,
// a stalled client may not.
const importIdle = 2 * time.Minute

// exportCatchUpWait bounds the wait of an export for this node's index to
// apply what the store holds: longer than an election of its leader.
const exportCatchUpWait = 15 * time.Second

// exportLinesTrailer is the trailer that ends a complete export with its
// number of lines: an export without it was cut short.
const exportLinesTrailer = "Presenced-Export-Lines"

// importNDJSON stores an NDJSON body of users, groups, members and roles and
// answers with the report. With ?progress=1 the answer is NDJSON too: one
// progress line per batch stored, then the report, or an error line when
// the import stopped. An import that stops says which lines were applied;
// importing the same file again completes it.
func (s *Server) importNDJSON(w http.ResponseWriter, r *http.Request) error {
	rc := http.NewResponseController(w)
	limit := s.cfg.Limits.MaxImportBytes
	body := &idleReader{r: &limitReader{r: r.Body, n: limit, limit: limit}, rc: rc}
	// A node that begins to shut down stops the import where it is, a
	// read of the body included, and says which lines it applied: the
	// shutdown does not wait for the rest of a long file.
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	stop := context.AfterFunc(s.draining, func() {
		cancel(errShuttingDown)
		body.stop()
	})
	defer stop()
	if r.URL.Query().Get("progress") != "1" {
		rep, err := s.store.Import(ctx, body, nil)
		if err != nil {
			err = s.importStopped(ctx, r, err)
			if !drainOverLimit(r, rc, err) {
				w.Header().Set("Connection", "close")
			}
			return err
		}
		writeJSON(w, http.StatusOK, rep)
		return nil
	}
	// HTTP/1 drops the unread body at the first flush of the answer unless
	// the connection is full duplex; without that, the lines wait for the end.
	duplex := rc.EnableFullDuplex() == nil
	started := false
	enc := json.NewEncoder(w)
	send := func(v any) {
		// The answer begins after the first batch, once the body is being
		// read: an import that fails before answers with its HTTP status.
		if !started {
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusOK)
			started = true
		}
		_ = rc.SetWriteDeadline(time.Now().Add(importIdle))
		_ = enc.Encode(v)
		_ = rc.Flush()
	}
	var progress func(membership.ImportReport)
	if duplex {
		progress = func(rep membership.ImportReport) {
			send(map[string]any{"progress": map[string]int{"lines": rep.Lines, "failed": rep.Failed}})
		}
	}
	rep, err := s.store.Import(ctx, body, progress)
	if err != nil {
		err = s.importStopped(ctx, r, err)
		var ae *apiError
		if !started || !errors.As(err, &ae) {
			return err
		}
		send(map[string]any{"error": map[string]string{"code": ae.code, "message": ae.message}})
		_ = drainOverLimit(r, rc, err)
		return nil
	}
	send(map[string]any{"report": rep})
	return nil
}

// errShuttingDown ends the imports in flight when the node shuts down.
var errShuttingDown = errors.New("the node is shutting down")

// importStopped turns the error of an import into the API's: it says which
// lines were applied and why the import stopped. ctx is the import's.
func (s *Server) importStopped(ctx context.Context, r *http.Request, err error) error {
	var stop *membership.ImportStopError
	if !errors.As(err, &stop) {
		if context.Cause(ctx) == errShuttingDown {
			return &apiError{http.StatusServiceUnavailable, codeUnavailable, "the node is shutting down; import again"}
		}
		return err
	}
	where := stop.Lines() + ": "
	var mbe *http.MaxBytesError
	switch {
	case context.Cause(ctx) == errShuttingDown: // the client may still be there to be told
		return &apiError{http.StatusServiceUnavailable, codeUnavailable,
			where + "the node is shutting down; import the same file again (to another node, or once this one is back) to complete it"}
	case errors.As(err, &mbe):
		return &apiError{http.StatusRequestEntityTooLarge, codeTooLarge,
			fmt.Sprintf("%sthe body is larger than the import limit of %d bytes (--max-import-bytes)", where, mbe.Limit)}
	case stop.ReadFailed && errors.Is(err, os.ErrDeadlineExceeded):
		return badRequest("%sthe client sent nothing for %s", where, importIdle)
	case stop.ReadFailed:
		return badRequest("%sthe body could not be read: %v", where, stop.Err)
	case r.Context().Err() != nil:
		return nil // the client went away: nobody to answer
	default:
		s.log.Warn("import stopped: the store did not take its writes", zap.Error(err))
		return &apiError{http.StatusServiceUnavailable, codeUnavailable,
			where + "the store did not take the writes; import the same file again to complete it"}
	}
}

// limitReader is http.MaxBytesReader without its closing of the
// connection: past n bytes it fails with an *http.MaxBytesError, and the
// handler drains the rest (drainOverLimit).
type limitReader struct {
	r        io.Reader
	n, limit int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if int64(len(p)) > l.n+1 {
		p = p[:l.n+1] // one byte more tells a body over the limit
	}
	k, err := l.r.Read(p)
	if int64(k) <= l.n {
		l.n -= int64(k)
		return k, err
	}
	k, l.n = int(l.n), 0
	return k, &http.MaxBytesError{Limit: l.limit}
}

// drainOverLimit reads and drops, for a little while, what is left of a
// body over the import limit, and reports whether it got to its end (true
// too when err is not about the limit). A connection closed with unread
// data is reset, and a client still sending could lose the answer it has
// not read; and a streamed answer cannot say "Connection: close" once it
// has begun, so its connection must stay usable.
func drainOverLimit(r *http.Request, rc *http.ResponseController, err error) bool {
	var ae *apiError
	if !errors.As(err, &ae) || ae.code != codeTooLarge {
		return true
	}
	_ = rc.SetReadDeadline(time.Now().Add(time.Second))
	_, err = io.CopyN(io.Discard, r.Body, 8<<20)
	return err == io.EOF
}

// idleReader extends the connection's read deadline before every read,
// until stop ends every read at once. The two set the deadline under one
// lock: a stop while no read is waiting (the import applying lines) would
// otherwise be undone by the next read's deadline, and that read would
// wait for the client for importIdle, holding up the node's shutdown.
type idleReader struct {
	r  io.Reader
	rc readDeadliner

	mu sync.Mutex
	// mu guards the following field and the deadline.
	stopped bool
}

// readDeadliner is the part of http.ResponseController idleReader uses.
type readDeadliner interface {
	SetReadDeadline(time.Time) error
}

func (b *idleReader) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.stopped {
		b.mu.Unlock()
		return 0, os.ErrDeadlineExceeded
	}
	_ = b.rc.SetReadDeadline(time.Now().Add(importIdle))
	b.mu.Unlock()
	return b.r.Read(p)
}

// stop ends the read in progress and every later one.
func (b *idleReader) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stopped = true
	_ = b.rc.SetReadDeadline(time.Now())
}

// exportNDJSON streams the membership as NDJSON in the import format, and
// ends a complete export with the Presenced-Export-Lines trailer.
func (s *Server) exportNDJSON(w http.ResponseWriter, r *http.Request) error {
	if !s.authority.SeesEveryone(viewerOf(r)) {
		// The whole membership: for those who may see all of it.
		return &apiError{http.StatusForbidden, codeForbidden, "the export is for admins and tokens bound to no user"}
	}
	// A backup of an index behind its bucket would miss what it lags: a
	// watch being resumed, or one that has not yet delivered what another
	// node acknowledged a moment ago.
	err := s.store.Err()
	if err == nil {
		ctx, cancel := context.WithTimeout(r.Context(), exportCatchUpWait)
		err = s.store.CaughtUp(ctx)
		cancel()
	}
	if err != nil {
		s.log.Warn("export refused", zap.Error(err))
		return &apiError{http.StatusServiceUnavailable, codeUnavailable, "the membership index is catching up with the store, retry"}
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Trailer", exportLinesTrailer)
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	n, err := s.store.Index().Export(r.Context(), idleWriter{w: w, rc: rc})
	if err != nil {
		// Only the client can fail an export (it left, or stopped reading):
		// the missing trailer tells it the export is incomplete.
		s.log.Info("export cut short", zap.Int("lines", n), zap.Error(err))
		return nil
	}
	w.Header().Set(exportLinesTrailer, strconv.Itoa(n))
	return nil
}

// idleWriter extends the connection's write deadline before every write.
type idleWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

func (b idleWriter) Write(p []byte) (int, error) {
	_ = b.rc.SetWriteDeadline(time.Now().Add(importIdle))
	return b.w.Write(p)
}

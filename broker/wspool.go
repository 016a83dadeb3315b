package broker

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"time"

	"github.com/presenced/presenced/broker/internal/wsaccept"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/protocol"
)

// writerPool writes queued batches to WebSockets from a fixed set of
// goroutines, so that an idle connection owns no writer goroutine: a
// subscriber's Ready signal queues its connection, once, and a worker
// drains it.
type writerPool struct {
	ch chan *wsConn
	wg sync.WaitGroup

	mu sync.RWMutex
	// mu guards the following field; schedule holds it for reading so
	// that stop never closes ch under a sender.
	stopped bool
}

// writers is how many connections may be written at the same time. A
// worker writing to a slow client waits for at most writeTimeout.
func writers() int { return 32 * runtime.GOMAXPROCS(0) }

func newWriterPool() *writerPool {
	p := &writerPool{ch: make(chan *wsConn, 1<<16)}
	n := writers()
	p.wg.Add(n)
	for range n {
		go func() {
			defer p.wg.Done()
			for wc := range p.ch {
				wc.flush()
			}
		}()
	}
	return p
}

// schedule queues wc for a worker unless it is queued already. It never
// blocks: it runs under the presence engine's locks.
func (p *writerPool) schedule(wc *wsConn) {
	if !wc.queued.CompareAndSwap(false, true) {
		return
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.stopped {
		return
	}
	select {
	case p.ch <- wc:
	default:
		go wc.flush() // the queue is full: never block the engine
	}
}

func (p *writerPool) stop() {
	p.mu.Lock()
	if !p.stopped {
		p.stopped = true
		close(p.ch)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// flush writes everything queued for wc. flushMu keeps the frames of one
// connection in order when two workers get it one after the other.
func (wc *wsConn) flush() {
	wc.flushMu.Lock()
	defer wc.flushMu.Unlock()
	wc.queued.Store(false)
	for {
		batches, err := wc.sub.TryNext()
		switch {
		case errors.Is(err, presence.ErrSlowConsumer):
			if wc.close(protocol.CloseSlowConsumer) { // once, however many flushes see it
				wc.s.metrics.slowConsumers.Inc()
			}
			return
		case err != nil || len(batches) == 0:
			return
		}
		for _, b := range batches {
			frame, pooled := wc.batchFrame(b)
			if frame == nil {
				continue
			}
			err := wc.write(context.Background(), frame)
			if pooled {
				wc.s.frameBufs.put(frame)
			}
			if err != nil {
				wc.close(protocol.CloseNormal)
				return
			}
			wc.s.metrics.deltasOut.Add(float64(len(b.Changes)))
			wc.s.metrics.observeFanout(b)
		}
	}
}

// pinger pings connections that have been silent for a third of the idle
// timeout (trimming their subscribers' queues) and closes those that leave
// a ping unanswered for two more thirds, from one goroutine for all
// connections. A ping is a frame written without waiting (Socket.Ping),
// and its pong is noted by the library's reader (Socket.OnPong); the
// pinger looks again at its next rounds. Only a connection the Socket
// cannot ping (TLS) is pinged through the library, which waits for the
// pong on a goroutine of its own, a bounded number at a time.
func (s *Server) pinger(quit <-chan struct{}) {
	idle := s.cfg.Limits.IdleTimeout
	t := time.NewTicker(idle / 3)
	defer t.Stop()
	sem := make(chan struct{}, 256)
	for {
		select {
		case <-quit:
			return
		case <-t.C:
		}
		now := time.Now()
		cutoff := now.Add(-idle / 3).UnixNano()
		for _, wc := range s.conns.all() {
			heard := max(wc.lastRead.Load(), wc.sock.LastPong())
			if heard > cutoff {
				continue
			}
			wc.sub.Trim()
			if sent := wc.pinged.Load(); sent > heard {
				// Unanswered: the ping went out one or two rounds ago
				// (a round is a third of the idle timeout).
				if now.UnixNano()-sent >= int64(idle/2) {
					wc.close(protocol.CloseIdleTimeout)
				}
				continue
			}
			if wc.isClosing() {
				continue
			}
			switch err := wc.sock.Ping(); {
			case err == nil:
				wc.pinged.Store(now.UnixNano())
				continue
			case errors.Is(err, wsaccept.ErrBusy):
				continue // a frame is being written: the next round
			case !errors.Is(err, wsaccept.ErrNoPing):
				wc.close(protocol.CloseIdleTimeout) // the socket failed
				continue
			}
			wc.pinged.Store(now.UnixNano())
			select {
			case sem <- struct{}{}:
			case <-quit:
				return
			}
			go func() {
				defer func() { <-sem }()
				ctx, cancel := context.WithTimeout(context.Background(), idle*2/3)
				defer cancel()
				if err := wc.c.Ping(ctx); err != nil {
					wc.close(protocol.CloseIdleTimeout)
				}
			}()
		}
	}
}

// opPool runs the ops of WebSocket connections. A connection's reader
// goroutine only reads: it hands each op to a parked worker and waits for
// it, so the deep work (decoding, snapshots, writes) grows the stacks of a
// few workers instead of one stack per connection, and an idle connection
// keeps a small reader stack. Ops of one connection still run one at a
// time, in order. When every worker is busy (writes to slow clients wait
// up to writeTimeout) the op runs in a goroutine of its own.
type opPool struct {
	jobs chan opJob
	quit chan struct{}
	wg   sync.WaitGroup
}

type opJob struct {
	f    func()
	done chan struct{}
}

func newOpPool() *opPool {
	p := &opPool{jobs: make(chan opJob), quit: make(chan struct{})}
	n := 8 * runtime.GOMAXPROCS(0)
	p.wg.Add(n)
	for range n {
		go func() {
			defer p.wg.Done()
			for {
				select {
				case j := <-p.jobs:
					j.f()
					if j.done != nil {
						j.done <- struct{}{}
					}
				case <-p.quit:
					return
				}
			}
		}()
	}
	return p
}

// do runs f on a worker and returns when it is done. done is the
// caller's own channel, with room for one value.
func (p *opPool) do(done chan struct{}, f func()) {
	select {
	case p.jobs <- opJob{f, done}:
	default:
		go func() {
			f()
			done <- struct{}{}
		}()
	}
	<-done
}

// spawn runs f on a worker, or in a goroutine of its own when every
// worker is busy, and returns at once.
func (p *opPool) spawn(f func()) {
	select {
	case p.jobs <- opJob{f: f}:
	default:
		go f()
	}
}

func (p *opPool) stop() {
	close(p.quit)
	p.wg.Wait()
}

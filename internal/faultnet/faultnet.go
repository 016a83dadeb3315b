// Package faultnet is a test helper: a TCP proxy between a client and its
// server that a test makes slow or silent, the faults of a loaded network
// or of a partition that drops packets.
package faultnet

import (
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy forwards the connections it accepts on Addr to its target.
type Proxy struct {
	// Addr is the loopback address clients dial instead of the target.
	Addr   string
	delay  time.Duration
	silent chan struct{}
	once   sync.Once
}

// Start forwards every connection to target, holding each byte back for
// delay in each direction (0: none). The proxy and its connections close
// in t's cleanup.
func Start(t testing.TB, target string, delay time.Duration) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), delay: delay, silent: make(chan struct{})}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, in, out)
			mu.Unlock()
			wg.Go(func() { p.pipe(out, in) })
			wg.Go(func() { p.pipe(in, out) })
		}
	})
	return p
}

// Silence stops all traffic for good: the connections stay open, and what
// either side sends from then on is dropped, its close as well.
func (p *Proxy) Silence() { p.once.Do(func() { close(p.silent) }) }

func (p *Proxy) silenced() bool {
	select {
	case <-p.silent:
		return true
	default:
		return false
	}
}

// pipe copies src to dst, each chunk delay after it was read, in order,
// and drops what is due once the proxy is silent.
func (p *Proxy) pipe(dst, src net.Conn) {
	type chunk struct {
		at   time.Time
		data []byte
	}
	q := make(chan chunk, 4096)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				q <- chunk{time.Now().Add(p.delay), buf[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range q {
		time.Sleep(time.Until(c.at))
		if p.silenced() {
			continue
		}
		if _, err := dst.Write(c.data); err != nil {
			break
		}
	}
	if !p.silenced() {
		dst.Close()
	}
	src.Close()
	for range q {
	}
}

package main

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestRefusedHandshakeKeepsTheDeadline: a server that answers the
// handshake with a refusal's head and then stalls its body must not hold
// the dial past its context. The body used to be read after the context's
// watch had ended, with no deadline.
func TestRefusedHandshakeKeepsTheDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	stalled := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			c.Close()
			return
		}
		_, _ = c.Write([]byte("HTTP/1.1 401 Unauthorized\r\nContent-Length: 100\r\n\r\n{"))
		stalled <- c // the rest of the body never comes
	}()
	defer func() {
		select {
		case c := <-stalled:
			c.Close()
		default:
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := dialWS(ctx, newSourceClient(""), "ws://"+ln.Addr().String()+"/v1/ws", "token")
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a refused handshake succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the dial outlived its 300ms context by seconds")
	}
}

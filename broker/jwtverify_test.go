package broker_test

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presenced/presenced/broker"
)

// TestJWTVerifiedOnceUserCheckedAlways: a client that connects again with
// the same JWT is not checked again for signature and claims, but a
// deactivated user's token is refused at once, cached or not, and a token
// with a bad signature is refused every time.
func TestJWTVerifiedOnceUserCheckedAlways(t *testing.T) {
	var parses atomic.Int32
	broker.SetParseJWTHook(func() { parses.Add(1) })
	defer broker.SetParseJWTHook(nil)
	s := startServer(t, "")
	seedTeam(t, s)
	tok := userJWT(t, "a", time.Hour)
	for i := range 3 {
		c := mustDial(t, s, tok)
		_ = c.c.CloseNow()
		if n := parses.Load(); n != 1 {
			t.Fatalf("connection %d: the token was checked %d times, want once", i+1, n)
		}
	}
	forged := tok[:len(tok)-4] + "AAAA"
	for range 2 {
		if _, resp, err := dialWS(t, s, forged, nil); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("a forged token: %v %v", resp, err)
		}
	}
	if n := parses.Load(); n != 3 {
		t.Fatalf("a forged token was checked %d times in 2 tries, want every time", n-1)
	}
	if st := call(t, "PATCH", s.URL+"/v1/users/a", s.Admin, map[string]any{"active": false}, nil); st != 200 {
		t.Fatalf("deactivate: %d", st)
	}
	if _, resp, err := dialWS(t, s, tok, nil); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a deactivated user's cached token: %v %v", resp, err)
	}
}

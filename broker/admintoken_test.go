package broker_test

import (
	"context"
	"testing"

	"github.com/presenced/presenced/broker"
)

// TestAdminTokenRecovery is how an operator recovers a lost admin token:
// a restart with another --admin-token replaces the stored one (the lost
// token stops working), and a later restart without the flag keeps it.
func TestAdminTokenRecovery(t *testing.T) {
	dir := t.TempDir()
	const lost, next = "lost-admin-token-0123456789", "next-admin-token-0123456789"
	restart := func(token string) *testServer {
		t.Helper()
		return startServer(t, dir, func(c *broker.Config) { c.AdminToken = token })
	}
	works := func(s *testServer, token string) bool {
		t.Helper()
		switch st := call(t, "GET", s.URL+"/v1/tokens", token, nil, nil); st {
		case 200:
			return true
		case 401:
			return false
		default:
			t.Fatalf("GET /v1/tokens: %d", st)
			return false
		}
	}

	s := restart(lost)
	if !works(s, lost) {
		t.Fatal("the admin token does not work")
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	s = restart(next)
	if !works(s, next) || works(s, lost) {
		t.Fatalf("after a restart with another admin token: new works %v, old works %v", works(s, next), works(s, lost))
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	s = restart("")
	if s.FirstRunToken() != "" || !works(s, next) {
		t.Fatalf("after a restart without the flag: first-run token %q, the stored token works %v", s.FirstRunToken(), works(s, next))
	}
}

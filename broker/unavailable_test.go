package broker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presenced/presenced/broker"
	"github.com/presenced/presenced/internal/natstest"
	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/protocol"
	"github.com/presenced/presenced/protocol/client"
)

// outage makes a stream take no writes (no stream listens on its
// subjects, as while it elects a leader) until the returned function runs.
func outage(t *testing.T, s *testServer, stream string) (end func()) {
	t.Helper()
	js, err := jetstream.New(s.NATSConn())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	off := cfg
	off.Subjects = []string{"presenced.test.outage." + stream + ".>"}
	if _, err := js.UpdateStream(ctx, off); err != nil {
		t.Fatal(err)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStoreUnavailableAnswers503: a write the store does not take (a
// leader election, a lost quorum) answers 503 unavailable with
// Retry-After, not 500 internal.
func TestStoreUnavailableAnswers503(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	for _, tt := range []struct {
		name, stream, method, path string
		body                       any
	}{
		{"a backend status", "KV_presenced_presence", "POST", "/v1/presence/status",
			map[string]any{"user": "a", "status": "busy", "source": "phone"}},
		{"a membership write", "KV_presenced_membership", "POST", "/v1/users",
			map[string]any{"id": "d", "username": "d"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			end := outage(t, s, tt.stream)
			defer end()
			req, _ := http.NewRequest(tt.method, s.URL+tt.path, jsonBody(t, tt.body))
			req.Header.Set("Authorization", "Bearer "+s.Admin)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("status %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
			}
		})
	}
}

func jsonBody(t *testing.T, v any) io.Reader {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(b)
}

// TestConnectDuringAnElection: a WebSocket opened while the presence
// store takes no writes (an election) waits for it and gets its hello once
// the store takes the session; one that the store keeps refusing until
// the node turns unavailable is closed with 4012 unavailable, which tells
// its client to come back, not 1011.
func TestConnectDuringAnElection(t *testing.T) {
	wsURL := func(s *testServer) string { return "ws" + strings.TrimPrefix(s.URL, "http") + "/v1/ws" }
	t.Run("ends", func(t *testing.T) {
		s := startServer(t, "")
		seedTeam(t, s)
		end := outage(t, s, "KV_presenced_presence")
		const election = 2 * time.Second
		time.AfterFunc(election, end)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		start := time.Now()
		c, err := client.Dial(ctx, wsURL(s), &client.Options{Token: userJWT(t, "a", time.Hour)})
		if err != nil {
			t.Fatalf("dial during a %s election: %v after %s", election, err, time.Since(start).Round(time.Millisecond))
		}
		defer c.Close()
		// The hello says the session is stored; the node's index applies it
		// a moment later, and the connection answers its ops only then. So
		// a's own subscription, not a read of the index right after the
		// hello, is where a must be online.
		snap, err := c.Subscribe(ctx, "team")
		if err != nil {
			t.Fatal(err)
		}
		if i := slices.IndexFunc(snap.Members, func(m protocol.Member) bool { return m.User == "a" }); i < 0 || snap.Members[i].Status != protocol.StatusOnline {
			t.Fatalf("a's own snapshot of team after its hello: %+v", snap.Members)
		}
	})
	t.Run("outlasts", func(t *testing.T) {
		s := startServer(t, "", func(c *broker.Config) { c.LeaseTTL, c.LeaseRefresh = time.Second, 250*time.Millisecond })
		seedTeam(t, s)
		end := outage(t, s, "KV_presenced_presence")
		defer end()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		start := time.Now()
		_, err := client.Dial(ctx, wsURL(s), &client.Options{Token: userJWT(t, "a", time.Hour)})
		if code := websocket.CloseStatus(err); code != protocol.CloseUnavailable {
			t.Fatalf("dial while the store takes no writes: %v (close code %d) after %s, want %d",
				err, code, time.Since(start).Round(time.Millisecond), protocol.CloseUnavailable)
		}
	})
}

// TestMembershipBucketLostIsAFault: the membership bucket's stream is gone
// from the store (a NATS that came back with an empty store, a stream
// deleted). The node must stop answering from the membership it still
// holds: the API answers 503, and /healthz reports the node faulted so
// that it is started again, which makes the bucket anew. Before, it went
// on serving users and groups the store no longer had, and /healthz
// stayed ok for good.
func TestMembershipBucketLostIsAFault(t *testing.T) {
	ns := natstest.Start(t)
	s := startServer(t, "", func(c *broker.Config) { c.NATSURL = ns.ClientURL() })
	seedTeam(t, s)
	js, err := jetstream.New(natstest.Connect(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(t.Context(), "KV_"+membership.DefaultBucket); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for {
		resp, err := http.Get(s.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatal("/healthz still ok 30 s after the membership bucket was lost")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("faulted %s after the bucket was lost", time.Since(start).Round(time.Millisecond))
	if st := call(t, "GET", s.URL+"/v1/groups/team/members", s.Admin, nil, nil); st != http.StatusServiceUnavailable {
		t.Fatalf("the members of a group the store lost: %d, want 503", st)
	}
}

package broker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
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

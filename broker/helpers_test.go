package broker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/presenced/presenced/broker"
	"go.uber.org/zap/zaptest"
)

// testServer runs a broker on 127.0.0.1 with an embedded NATS whose data is
// in dir (a new temp dir when ""). It stops in cleanup.
type testServer struct {
	*broker.Server
	URL   string
	Admin string
}

const testAdminToken = "test-admin-token-0123456789"

func startServer(t testing.TB, dir string, mod ...func(*broker.Config)) *testServer {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	cfg := broker.Config{
		DataDir:    dir,
		HTTPAddr:   "127.0.0.1:0",
		AdminToken: testAdminToken,
		JWTSecret:  testJWTSecret,
		Grace:      200 * time.Millisecond,
		Logger:     zaptest.NewLogger(t),
	}
	for _, m := range mod {
		m(&cfg)
	}
	s, err := broker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return &testServer{Server: s, URL: broker.BaseURL(s.Addr()), Admin: testAdminToken}
}

const testJWTSecret = "test-jwt-secret-test-jwt-secret-0123"

// call does one HTTP request with a bearer token and decodes a JSON answer
// into out (when not nil). It returns the status.
func call(t testing.TB, method, url, token string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, url, raw, err)
		}
	}
	return resp.StatusCode
}

// apiErr is the native error body.
type apiErr struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

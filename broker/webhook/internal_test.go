package webhook

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"3", 3 * time.Second, true},
		{"0", 0, true},
		{"-1", 0, false},
		{"Wed, 21 Oct 2015 07:28:00 GMT", 0, false},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.v != "" {
			h.Set("Retry-After", tt.v)
		}
		if got, ok := retryAfter(h); got != tt.want || ok != tt.ok {
			t.Errorf("retryAfter(%q) = %v, %v; want %v, %v", tt.v, got, ok, tt.want, tt.ok)
		}
	}
}

func TestValidateURL(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"https://example.com/hook", "https://example.com/hook", true},
		{"HTTP://127.0.0.1:8080/x?y=1", "http://127.0.0.1:8080/x?y=1", true},
		{"", "", false},
		{"ftp://example.com/", "", false},
		{"/relative", "", false},
		{"https:///nohost", "", false},
		{"https:opaque", "", false},
		{"https://user:pass@example.com/", "", false},
		{"https://example.com/#frag", "", false},
		{"https://example.com:99999/", "", false},
		{"https://example.com/" + string(make([]byte, MaxURLLen)), "", false},
		{"http://[::1", "", false},
	}
	for _, tt := range tests {
		got, err := validateURL(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("validateURL(%.40q) = %q, %v; want %q, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestDescribeHidesURLSecrets(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://hooks.example:8443/T0KEN-path?token=T0KEN-query", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = http.DefaultClient.Do(req)
	if err == nil {
		t.Fatal("request with a canceled context succeeded")
	}
	got := describe(err)
	if strings.Contains(got, "T0KEN") || !strings.Contains(got, "https://hooks.example:8443") || !strings.Contains(got, "canceled") {
		t.Fatalf("describe = %q, want the host and the cause without path or query", got)
	}
	if got := describe(&statusError{503}); got != "endpoint answered 503 Service Unavailable" {
		t.Fatalf("describe(status) = %q", got)
	}
	if got := describe(errors.New("x")); got != "x" {
		t.Fatalf("describe(other) = %q", got)
	}
}

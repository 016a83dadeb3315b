package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

func TestQueueDropsOldest(t *testing.T) {
	q := newQueue(5)
	t0 := time.Unix(1000, 0)
	var dropped int
	for i := range 12 {
		if q.push(presence.Change{User: fmt.Sprint(i), Rev: uint64(i)}, t0.Add(time.Duration(i)*time.Second)) {
			dropped++
		}
	}
	if dropped != 7 || q.len() != 5 {
		t.Fatalf("dropped %d, len %d; want 7, 5", dropped, q.len())
	}
	if got := q.oldest(); !got.Equal(t0.Add(7 * time.Second)) {
		t.Fatalf("oldest = %v, want the 8th push's time", got)
	}
	got := q.pop(3)
	if len(got) != 3 || got[0].Rev != 7 || got[2].Rev != 9 {
		t.Fatalf("pop(3) = %+v, want revs 7..9", got)
	}
	// Wrap around the ring: push past the end of the buffer.
	for i := 12; i < 15; i++ {
		q.push(presence.Change{Rev: uint64(i)}, t0)
	}
	got = q.pop(100)
	var revs []uint64
	for _, c := range got {
		revs = append(revs, c.Rev)
	}
	if fmt.Sprint(revs) != "[10 11 12 13 14]" || q.len() != 0 {
		t.Fatalf("pop(100) = %v (len left %d), want [10 11 12 13 14]", revs, q.len())
	}
	q.push(presence.Change{Rev: 99}, t0)
	if n := q.clear(); n != 1 || q.len() != 0 {
		t.Fatalf("clear = %d, len %d", n, q.len())
	}
}

func TestQueueGrowsOnDemand(t *testing.T) {
	q := newQueue(10000)
	for i := range 40 {
		q.push(presence.Change{Rev: uint64(i)}, time.Time{})
	}
	if len(q.buf) >= 10000 || q.len() != 40 {
		t.Fatalf("ring of %d for 40 changes", len(q.buf))
	}
	for i, c := range q.pop(40) {
		if c.Rev != uint64(i) {
			t.Fatalf("change %d has rev %d", i, c.Rev)
		}
	}
}

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

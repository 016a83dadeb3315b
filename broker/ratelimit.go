package broker

import (
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// rateLimits holds a token bucket per API token and per client IP for the
// REST APIs. Buckets idle for a while are forgotten, so the map stays
// bounded by the number of recently active clients.
type rateLimits struct {
	limit   rate.Limit
	burst   int
	off     bool
	refused prometheus.Counter // 429s

	mu sync.Mutex
	// mu guards the following fields.
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	l    *rate.Limiter
	used time.Time
}

const bucketIdle = 10 * time.Minute

func newRateLimits(l Limits, refused prometheus.Counter) *rateLimits {
	return &rateLimits{
		limit:   rate.Limit(l.RESTRate),
		burst:   l.RESTBurst,
		off:     l.RESTRate < 0,
		buckets: map[string]*bucket{},
		refused: refused,
	}
}

// allow takes one token for key; when none is left it answers 429 with
// Retry-After and returns false.
func (rl *rateLimits) allow(w http.ResponseWriter, key string) bool {
	if rl == nil || rl.off {
		return true
	}
	now := time.Now()
	rl.mu.Lock()
	if now.Sub(rl.lastSweep) > time.Minute {
		for k, b := range rl.buckets {
			if now.Sub(b.used) > bucketIdle {
				delete(rl.buckets, k)
			}
		}
		rl.lastSweep = now
	}
	b := rl.buckets[key]
	if b == nil {
		b = &bucket{l: rate.NewLimiter(rl.limit, rl.burst)}
		rl.buckets[key] = b
	}
	b.used = now
	res := b.l.ReserveN(now, 1)
	delay := res.DelayFrom(now)
	if delay > 0 {
		res.CancelAt(now)
	}
	rl.mu.Unlock()
	if delay == 0 {
		return true
	}
	rl.refused.Inc()
	secs := int(math.Ceil(delay.Seconds()))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeJSON(w, http.StatusTooManyRequests, map[string]any{"error": map[string]string{
		"code": codeRateLimited, "message": "too many requests, retry in " + strconv.Itoa(secs) + "s",
	}})
	return false
}

func (rl *rateLimits) allowIP(w http.ResponseWriter, r *http.Request) bool {
	return rl.allow(w, "ip:"+clientIP(r))
}

func (rl *rateLimits) allowPrincipal(w http.ResponseWriter, p Principal) bool {
	if p.TokenID != "" {
		return rl.allow(w, "token:"+p.TokenID)
	}
	return rl.allow(w, "user:"+p.UserID)
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

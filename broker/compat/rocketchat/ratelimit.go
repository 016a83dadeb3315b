package rocketchat

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// RateLimit limits calls per route and client IP in fixed windows, the way
// upstream's API rate limiter does. The zero value is off.
type RateLimit struct {
	// Calls is how many calls one IP may make to one route per window;
	// 0 turns the limiter off.
	Calls int
	// Window is the length of a window (default one minute).
	Window time.Duration
}

// limiter counts calls per key in fixed windows.
type limiter struct {
	calls  int
	window time.Duration
	now    func() time.Time

	mu sync.Mutex
	// mu guards the following fields.
	windows map[string]window
	swept   time.Time // when windows was last cleared of ended windows
}

type window struct {
	start time.Time
	count int
}

func newLimiter(rl RateLimit, now func() time.Time) *limiter {
	if rl.Calls <= 0 {
		return nil
	}
	if rl.Window <= 0 {
		rl.Window = time.Minute
	}
	return &limiter{calls: rl.Calls, window: rl.Window, now: now, windows: map[string]window{}}
}

// take counts one call under key. It returns how many calls are left in the
// window, when the window ends, and whether this call is allowed.
func (l *limiter) take(key string) (left int, reset time.Time, ok bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) >= l.window {
		for k, w := range l.windows {
			if now.Sub(w.start) >= l.window {
				delete(l.windows, k)
			}
		}
		l.swept = now
	}
	w, found := l.windows[key]
	if !found || now.Sub(w.start) >= l.window {
		w = window{start: now}
	}
	w.count++
	l.windows[key] = w
	return max(0, l.calls-w.count), w.start.Add(l.window), w.count <= l.calls
}

// enforce applies the limit to one call and sets the X-RateLimit headers
// upstream sends on every limited route.
func (l *limiter) enforce(w http.ResponseWriter, route, ip string) *apiError {
	left, reset, ok := l.take(route + " " + ip)
	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(l.calls))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(left))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(reset.UnixMilli(), 10))
	if ok {
		return nil
	}
	wait := reset.Sub(l.now())
	secs := int64((wait + time.Second - 1) / time.Second)
	return tooManyRequests(fmt.Sprintf("Error, too many requests. Please slow down. You must wait %d seconds before trying this endpoint again. [error-too-many-requests]", secs))
}

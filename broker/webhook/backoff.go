package webhook

import (
	"net/http"
	"strconv"
	"time"
)

// backoff is the wait before retry number attempt (0 for the first retry):
// min doubled per attempt and capped at max, then jittered down by up to
// half with r in [0,1), and never below min. Jitter spreads the retries of
// the nodes sharing a failing endpoint.
func backoff(attempt int, minWait, maxWait time.Duration, r float64) time.Duration {
	d := minWait
	for range attempt {
		if d >= maxWait/2 {
			d = maxWait
			break
		}
		d *= 2
	}
	d = min(d, maxWait)
	d -= time.Duration(r * float64(d/2))
	return max(d, minWait)
}

// retryAfter reads a Retry-After header in seconds (the HTTP-date form is
// ignored) and reports whether there was one.
func retryAfter(h http.Header) (time.Duration, bool) {
	v := h.Get("Retry-After")
	if v == "" {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}

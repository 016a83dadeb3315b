package webhook

import (
	"net/http"
	"strconv"
	"time"
)

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

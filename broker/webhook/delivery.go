package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// userAgent names the sender of deliveries.
const userAgent = "presenced-webhook/1"

// newClient returns the default delivery client: no redirects followed (a
// 3xx is a failure), and every phase of a request bounded.
func newClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: min(timeout, 5*time.Second), KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   min(timeout, 5*time.Second),
			ResponseHeaderTimeout: timeout,
			ExpectContinueTimeout: time.Second,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// statusError is a delivery answered with a status other than 2xx.
type statusError struct{ status int }

func (e *statusError) Error() string {
	return "endpoint answered " + strconv.Itoa(e.status) + " " + http.StatusText(e.status)
}

// post makes one delivery attempt. On failure it returns the endpoint's
// Retry-After, if any.
func (s *Service) post(ctx context.Context, url, id string, seq uint64, body []byte, sig string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set(HeaderSignature, sig)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(s.cfg.Clock.Now().Unix(), 10))
	req.Header.Set(HeaderBatch, strconv.FormatUint(seq, 10))
	req.Header.Set(HeaderWebhook, id)
	req.Header.Set(HeaderNode, s.cfg.NodeID)
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	// Drain a little so the connection can be reused; an endpoint's answer
	// is not read beyond that.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	_ = resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return 0, nil
	}
	hint, _ := retryAfter(resp.Header)
	return hint, &statusError{resp.StatusCode}
}

// describe returns a delivery error as logs and the status API show it. A
// transport error names the endpoint by scheme and host only: URLs often
// carry a token in their path or query.
func describe(err error) string {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err.Error()
	}
	where := "endpoint"
	if u, perr := url.Parse(ue.URL); perr == nil {
		where = u.Scheme + "://" + u.Host
	}
	return ue.Op + " " + where + ": " + describe(ue.Err)
}

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
	"sync"
	"time"
)

// userAgent names the sender of deliveries.
const userAgent = "presenced-webhook/2"

// newClient returns the default delivery client: no redirect followed (a
// 3xx is a failure, so none leads to a private address either), every
// phase of a request bounded, and, unless allowPrivate, only public
// addresses dialed. Through an HTTP proxy from the environment the proxy
// itself may be private (it is the operator's); the target is then checked
// at registration only, since the proxy dials it.
func newClient(timeout time.Duration, allowPrivate bool) *http.Client {
	plain := &net.Dialer{Timeout: min(timeout, 5*time.Second), KeepAlive: 30 * time.Second}
	dial := plain.DialContext
	proxy := http.ProxyFromEnvironment
	if !allowPrivate {
		guarded := *plain
		guarded.Control = dialControl
		var mu sync.Mutex
		proxies := map[string]bool{} // host:port of the proxies in use
		proxy = func(r *http.Request) (*url.URL, error) {
			u, err := http.ProxyFromEnvironment(r)
			if u != nil {
				mu.Lock()
				proxies[canonicalAddr(u)] = true
				mu.Unlock()
			}
			return u, err
		}
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			mu.Lock()
			isProxy := proxies[addr]
			mu.Unlock()
			if isProxy {
				return plain.DialContext(ctx, network, addr)
			}
			return guarded.DialContext(ctx, network, addr)
		}
	}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:                 proxy,
			DialContext:           dial,
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

// canonicalAddr is the host:port the transport dials for a proxy URL.
func canonicalAddr(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443", "socks5": "1080", "socks5h": "1080"}[u.Scheme]
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// statusError is a delivery answered with a status other than 2xx.
type statusError struct{ status int }

func (e *statusError) Error() string {
	return "endpoint answered " + strconv.Itoa(e.status) + " " + http.StatusText(e.status)
}

// post makes one delivery attempt of b to url, signed with secret at the
// current time. On failure it returns the endpoint's Retry-After, if any.
func (s *Service) post(ctx context.Context, url, secret string, b *batch) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b.body))
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	ts := s.cfg.Clock.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set(HeaderSignature, Sign(secret, ts, b.body))
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderBatch, b.id)
	req.Header.Set(HeaderWebhook, b.webhook)
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

package broker_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/presenced/presenced/broker"
	"github.com/presenced/presenced/internal/natstest"
	"github.com/presenced/presenced/protocol"
)

func TestRateLimitAnswers429(t *testing.T) {
	s := startServer(t, "", func(c *broker.Config) { c.Limits.RESTRate, c.Limits.RESTBurst = 1, 3 })
	var last *http.Response
	for range 5 {
		req, _ := http.NewRequest("GET", s.URL+"/v1/users", nil)
		req.Header.Set("Authorization", "Bearer "+s.Admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		last = resp
	}
	if last.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("6th call in a burst of 3: %d", last.StatusCode)
	}
	if secs, err := strconv.Atoi(last.Header.Get("Retry-After")); err != nil || secs < 1 {
		t.Fatalf("Retry-After %q", last.Header.Get("Retry-After"))
	}
	var e apiErr
	if st := call(t, "GET", s.URL+"/v1/users", s.Admin, nil, &e); st != 429 || e.Error.Code != "rate_limited" {
		t.Fatalf("body: %d %+v", st, e)
	}
	// Failed authentication is limited per client IP.
	for range 4 {
		call(t, "GET", s.URL+"/v1/users", "wrong-token", nil, nil)
	}
	if st := call(t, "GET", s.URL+"/v1/users", "wrong-token", nil, nil); st != 429 {
		t.Fatalf("guessing tokens is not limited: %d", st)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "presenced test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	s := startServer(t, "", func(c *broker.Config) { c.TLSCertFile, c.TLSKeyFile = certFile, keyFile })
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get("https://" + s.Addr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("https: %d %v", resp.StatusCode, resp.TLS)
	}
	if resp, err := http.Get("http://" + s.Addr() + "/healthz"); err == nil && resp.StatusCode == 200 {
		t.Fatal("plain HTTP served on the TLS port")
	}
	// WebSockets over TLS: every frame, small or larger than the socket's
	// write buffer, goes through TLS. (The helpers' requests go through
	// http.DefaultClient: it trusts the certificate for this test.)
	plain := http.DefaultClient.Transport
	http.DefaultClient.Transport = client.Transport
	t.Cleanup(func() { http.DefaultClient.Transport = plain })
	s = &testServer{Server: s.Server, URL: "https://" + s.Addr(), Admin: s.Admin}
	seedTeam(t, s)
	text := strings.Repeat("t", protocol.MaxStatusText-8)
	if st := call(t, "POST", s.URL+"/v1/presence/status", s.Admin, map[string]any{"user": "b", "status": "busy", "source": "tls", "text": text}, nil); st/100 != 2 {
		t.Fatalf("status: %d", st)
	}
	c, _, err := dialWS(t, s, userJWT(t, "a", time.Hour), &websocket.DialOptions{HTTPClient: client})
	if err != nil {
		t.Fatalf("wss dial: %v", err)
	}
	if f := c.next(); f.Op != protocol.OpHello {
		t.Fatalf("first frame over wss: %+v", f)
	}
	snap := c.reply(protocol.ClientFrame{Op: protocol.OpSubscribe, Group: "team"})
	if snap.Op != protocol.OpSnapshot || len(snap.Members) != 2 {
		t.Fatalf("snapshot over wss: %+v", snap)
	}
	for _, m := range snap.Members {
		if m.User == "b" && m.Text != text {
			t.Fatalf("b's text over wss: %d bytes, want %d", len(m.Text), len(text))
		}
	}
}

func TestPprofOnlyOnLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:6060", "10.1.2.3:6060", "example.com:6060"} {
		if _, err := broker.New(broker.Config{PprofAddr: addr}); !errors.Is(err, broker.ErrConfig) {
			t.Errorf("--pprof-addr %s accepted: %v", addr, err)
		}
	}
	port := natstest.FreePort(t)
	s := startServer(t, "", func(c *broker.Config) { c.PprofAddr = "127.0.0.1:" + strconv.Itoa(port) })
	_ = s
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://127.0.0.1:"+strconv.Itoa(port)+"/debug/pprof/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("pprof: %d", resp.StatusCode)
	}
	if st := call(t, "GET", s.URL+"/debug/pprof/", "", nil, nil); st == 200 {
		t.Fatal("pprof served on the API port")
	}
}

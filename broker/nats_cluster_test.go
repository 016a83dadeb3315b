package broker_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/presenced/presenced/broker"
)

// routeCerts are the files of a CA and of a certificate it signed for
// 127.0.0.1, good for both ends of a route.
type routeCerts struct{ ca, cert, key string }

func writeRouteCerts(t testing.TB, dir, name string) routeCerts {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	c := routeCerts{ca: filepath.Join(dir, "ca.pem"), cert: filepath.Join(dir, "cert.pem"), key: filepath.Join(dir, "key.pem")}
	for path, block := range map[string]*pem.Block{
		c.ca: {Type: "CERTIFICATE", Bytes: caDER}, c.cert: {Type: "CERTIFICATE", Bytes: der}, c.key: {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// startOutsider starts a nats-server that routes to addr as a member of
// the test cluster: JetStream on, and presenced's account declared with a
// user of its own, so that it would see presenced's streams if it joined.
// user and certs (when not nil) are what it routes with.
func startOutsider(t testing.TB, name, addr string, user *url.Userinfo, certs *routeCerts) (*server.Server, *nats.Conn) {
	t.Helper()
	opts := &server.Options{}
	if err := opts.ProcessConfigString(`accounts { PRESENCED { jetstream: enabled, users: [ { user: outsider, password: outsider } ] } }`); err != nil {
		t.Fatal(err)
	}
	opts.ServerName = name
	opts.Host, opts.Port = "127.0.0.1", -1
	opts.JetStream, opts.StoreDir = true, t.TempDir()
	opts.NoLog, opts.NoSigs = true, true
	opts.Cluster = server.ClusterOpts{Name: "test", Host: "127.0.0.1", Port: -1}
	opts.Routes = []*url.URL{{Scheme: "nats-route", Host: addr, User: user}}
	if certs != nil {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: certs.cert, KeyFile: certs.key, CaFile: certs.ca, Verify: true})
		if err != nil {
			t.Fatal(err)
		}
		tc.RootCAs = tc.ClientCAs
		opts.Cluster.TLSConfig = tc
	}
	ns := runNATSServer(t, opts)
	nc, err := nats.Connect("", nats.InProcessServer(ns), nats.UserInfo("outsider", "outsider"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return ns, nc
}

// runNATSServer starts a nats-server with opts, shut down in cleanup, and
// waits until it takes connections.
func runNATSServer(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatalf("nats-server %s not ready", opts.ServerName)
	}
	return ns
}

// seesBucket reports whether nc's JetStream answers for presenced's
// membership bucket within a second.
func seesBucket(nc *nats.Conn) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	js, _ := jetstream.New(nc)
	_, err := js.Stream(ctx, "KV_presenced_membership")
	return err == nil
}

// routedTo returns the names of the servers node has routes to.
func routedTo(t testing.TB, n *clusterNode) map[string]bool {
	t.Helper()
	rz, err := n.NATSServer().Routez(nil)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, r := range rz.Routes {
		names[r.RemoteName] = true
	}
	return names
}

// TestClusterRefusesOutsiders runs a cluster whose routes need the
// password and TLS with certificates of one CA: its buckets form with three
// replicas, and a server that routes in without either is never a peer.
func TestClusterRefusesOutsiders(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	dir := t.TempDir()
	good := writeRouteCerts(t, filepath.Join(dir, "good"), "presenced")
	other := writeRouteCerts(t, filepath.Join(dir, "other"), "outsider")
	nodes := startCluster(t, func(c *broker.Config) {
		c.ClusterTLSCertFile, c.ClusterTLSKeyFile, c.ClusterTLSCAFile = good.cert, good.key, good.ca
	})
	a := nodes[0]

	t.Run("the buckets have three replicas", func(t *testing.T) {
		js, _ := jetstream.New(a.NATSConn())
		for _, name := range []string{"KV_presenced_membership", "KV_presenced_presence"} {
			var last string
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				st, err := js.Stream(ctx, name)
				var info *jetstream.StreamInfo
				if err == nil {
					info, err = st.Info(ctx)
				}
				cancel()
				if err == nil && info.Config.Replicas == 3 && info.Cluster != nil && len(info.Cluster.Replicas) == 2 &&
					info.Cluster.Replicas[0].Current && info.Cluster.Replicas[1].Current {
					break
				}
				last = fmt.Sprint(err)
				if info != nil {
					last = fmt.Sprintf("replicas %d, cluster %+v", info.Config.Replicas, info.Cluster)
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: %s", name, last)
				}
			}
		}
	})

	t.Run("an anonymous client of a node is refused", func(t *testing.T) {
		// Routing needs a client port: it is open on loopback.
		if _, err := natsDial(t, a.NATSServer().ClientURL()); !refused(err) {
			t.Fatalf("want an authorization violation, got %v", err)
		}
	})

	password := url.UserPassword("presenced", testClusterPassword)
	type outsider struct {
		name  string
		user  *url.Userinfo
		certs *routeCerts
		ns    *server.Server
		nc    *nats.Conn
	}
	outsiders := []*outsider{
		{name: "no-credentials"},
		{name: "password-without-tls", user: password},
		{name: "password-with-other-ca", user: password, certs: &other},
		{name: "certificate-without-password", certs: &good},
		{name: "certificate-with-wrong-password", user: url.UserPassword("presenced", "wrong-password-0123"), certs: &good},
	}
	// All at once: each is watched for as long as routes take to form.
	for _, o := range outsiders {
		o.ns, o.nc = startOutsider(t, o.name, a.clusterAddr, o.user, o.certs)
	}
	// The cluster's own routes are the ones that count: an outsider lists a
	// route of its own for the moment between the node's INFO and the node
	// refusing its CONNECT, and nothing crosses it.
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		for _, n := range nodes {
			routes := routedTo(t, n)
			for _, o := range outsiders {
				if routes[o.name] {
					t.Errorf("%s: %s routed it in", o.name, n.name)
				}
			}
		}
		if t.Failed() {
			break
		}
	}
	for _, o := range outsiders {
		t.Run(o.name, func(t *testing.T) {
			for _, n := range nodes {
				if routedTo(t, n)[o.name] {
					t.Fatalf("%s has a route to it", n.name)
				}
			}
			if seesBucket(o.nc) {
				t.Fatal("it sees presenced's membership bucket")
			}
		})
	}

	// The same server with the certificate and the password joins: the
	// outsiders above were refused for what they lacked.
	t.Run("a server with the certificate and the password joins", func(t *testing.T) {
		ns, nc := startOutsider(t, "member", a.clusterAddr, password, &good)
		for deadline := time.Now().Add(30 * time.Second); ns.NumRoutes() == 0 || !routedTo(t, a)["member"] || !seesBucket(nc); {
			if time.Now().After(deadline) {
				t.Fatalf("never joined: %d routes", ns.NumRoutes())
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// TestClusterPortTakenFailsTheStartAtOnce starts a node whose cluster port
// another process holds: the start must fail at once and say why. The
// embedded server logged the bind error at a level nobody saw and the
// start waited 30 s for a server that would never be ready, then said
// only "did not become ready".
func TestClusterPortTakenFailsTheStartAtOnce(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	s, err := broker.New(broker.Config{
		DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", AdminToken: testAdminToken, JWTSecret: testJWTSecret,
		ClusterName: "c", ClusterListen: taken.Addr().String(), ClusterInsecure: true,
		Routes: []string{"nats-route://127.0.0.1:1"}, Logger: zaptest.NewLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = s.Start(ctx)
	if err == nil {
		_ = s.Shutdown(context.Background())
		t.Fatal("a node started on a cluster port another process holds")
	}
	if !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("the start failed with %q, which does not say the port is taken", err)
	}
}

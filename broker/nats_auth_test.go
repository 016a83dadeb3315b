package broker_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/presenced/presenced/broker"
	"github.com/presenced/presenced/internal/natstest"
	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/protocol"
	"go.uber.org/zap/zaptest"
)

const (
	testPublisherPassword = "test-publisher-password-0123"
	testNATSAdminPassword = "test-nats-admin-password-0123"
)

// nkeyUser returns a connect option that signs in with a new user nkey, and
// that nkey's public key.
func nkeyUser(t testing.TB) (nats.Option, string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return nats.Nkey(pub, kp.Sign), pub
}

// natsDial connects to url once, without reconnecting.
func natsDial(t testing.TB, url string, opts ...nats.Option) (*nats.Conn, error) {
	t.Helper()
	nc, err := nats.Connect(url, append([]nats.Option{nats.NoReconnect(), nats.Timeout(5 * time.Second)}, opts...)...)
	if err == nil {
		t.Cleanup(nc.Close)
	}
	return nc, err
}

func refused(err error) bool {
	return err != nil && (errors.Is(err, nats.ErrAuthorization) || strings.Contains(strings.ToLower(err.Error()), "authorization violation"))
}

// TestNATSClientPortAdmits: with --nats-listen, the client port admits the
// configured publishers and admin, and nobody else.
func TestNATSClientPortAdmits(t *testing.T) {
	nkeyOK, pub := nkeyUser(t)
	nkeyOther, _ := nkeyUser(t)
	s := startServer(t, "", func(c *broker.Config) {
		c.NATSListen = "127.0.0.1:0"
		c.NATSPublisherPassword = testPublisherPassword
		c.NATSPublisherNKey = pub
		c.NATSAdminPassword = testNATSAdminPassword
	})
	url := s.NATSClientURL()
	if url == "" {
		t.Fatal("no client URL with --nats-listen")
	}
	self, err := nkeys.FromSeed([]byte(s.NATSSelfSeed()))
	if err != nil {
		t.Fatal(err)
	}
	selfPub, _ := self.PublicKey()
	selfKey := nats.Nkey(selfPub, self.Sign)
	for _, tc := range []struct {
		name string
		opt  nats.Option
		ok   bool
	}{
		{"anonymous", nil, false},
		{"a token", nats.Token(testPublisherPassword), false},
		{"the publisher with a wrong password", nats.UserInfo("publisher", "wrong-password-0123456789"), false},
		{"the publisher", nats.UserInfo("publisher", testPublisherPassword), true},
		{"the publisher's nkey", nkeyOK, true},
		{"another nkey", nkeyOther, false},
		{"the admin with the publisher's password", nats.UserInfo("admin", testPublisherPassword), false},
		{"the admin", nats.UserInfo("admin", testNATSAdminPassword), true},
		// Its key is right: only in-process connections may use it.
		{"presenced's own nkey over the network", selfKey, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []nats.Option
			if tc.opt != nil {
				opts = append(opts, tc.opt)
			}
			_, err := natsDial(t, url, opts...)
			switch {
			case tc.ok && err != nil:
				t.Fatalf("refused: %v", err)
			case !tc.ok && !refused(err):
				t.Fatalf("want an authorization violation, got %v", err)
			}
		})
	}

	t.Run("the admin reaches JetStream, the publisher does not", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		admin, err := natsDial(t, url, nats.UserInfo("admin", testNATSAdminPassword))
		if err != nil {
			t.Fatal(err)
		}
		js, _ := jetstream.New(admin)
		if _, err := js.Stream(ctx, "KV_presenced_membership"); err != nil {
			t.Fatalf("admin: %v", err)
		}
		pubc, err := natsDial(t, url, nats.UserInfo("publisher", testPublisherPassword))
		if err != nil {
			t.Fatal(err)
		}
		js, _ = jetstream.New(pubc)
		ctx, cancel = context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := js.AccountInfo(ctx); err == nil {
			t.Fatal("the publisher reached the JetStream API")
		}
	})

	t.Run("publishers", func(t *testing.T) {
		checkPublisher(t, s, url, nats.UserInfo("publisher", testPublisherPassword))
	})
	t.Run("publishers with an nkey", func(t *testing.T) {
		checkPublisher(t, s, url, nkeyOK)
	})
}

// checkPublisher checks what a publisher signed in with opt may do through
// the NATS at url, which s uses: publish a status and read the reply,
// follow the changes, and nothing else.
func checkPublisher(t *testing.T, s *testServer, url string, opt nats.Option) {
	call(t, "POST", s.URL+"/v1/users", s.Admin, map[string]any{"id": "alice", "username": "alice"}, nil)
	errs := make(chan error, 64)
	nc, err := natsDial(t, url, opt, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case errs <- err:
		default:
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	publish := func(t *testing.T, status protocol.Status) uint64 {
		t.Helper()
		body, _ := json.Marshal(presence.PublishRequest{User: "alice", Status: status, Text: "from crm", Source: "crm"})
		msg, err := nc.Request(presence.SubjectPublish, body, 5*time.Second)
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		var r presence.PublishReply
		if err := json.Unmarshal(msg.Data, &r); err != nil || !r.OK || r.Rev == 0 {
			t.Fatalf("publish answered %s (%v)", msg.Data, err)
		}
		return r.Rev
	}

	t.Run("publishes a status and follows the change", func(t *testing.T) {
		changes, err := nc.SubscribeSync(presence.SubjectChanges + ">")
		if err != nil {
			t.Fatal(err)
		}
		defer changes.Unsubscribe()
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		rev := publish(t, protocol.StatusBusy)
		for {
			msg, err := changes.NextMsg(5 * time.Second)
			if err != nil {
				t.Fatalf("no change of alice at rev %d: %v", rev, err)
			}
			var c struct {
				User   string
				Status protocol.Status
				Rev    uint64
			}
			if err := json.Unmarshal(msg.Data, &c); err != nil {
				t.Fatal(err)
			}
			if c.User == "alice" && c.Status == protocol.StatusBusy && c.Rev == rev {
				break
			}
		}
		publish(t, protocol.StatusOffline) // removes the source
	})

	// The token record an attacker would write: an admin token whose
	// secret they know.
	const evil = "evil-admin-token-0123456789"
	record, _ := json.Marshal(membership.Token{ID: "evil", Name: "evil", Scopes: []string{membership.ScopeAdmin},
		Hash: membership.HashToken(evil), CreatedAt: time.Now().UTC()})
	forged, _ := json.Marshal(map[string]any{"user": "alice", "status": "online", "rev": 1 << 40})
	for _, tc := range []struct {
		sub     bool // subscribe instead of publish
		subject string
		data    []byte
	}{
		{subject: "$KV.presenced_membership.tokens.evil", data: record},
		{subject: "$JS.API.STREAM.DELETE.KV_presenced_membership"},
		{subject: "$JS.API.STREAM.NAMES"},
		{subject: "$JS.API.INFO"},
		{subject: "presenced.heartbeat.n1", data: []byte("{}")},
		{subject: "presenced.changes.alice", data: forged},
		{subject: "$SYS.REQ.SERVER.PING"},
		{subject: "_INBOX.someone.else", data: []byte("a forged reply")},
		{sub: true, subject: "$KV.>"},
		{sub: true, subject: "$JS.API.>"},
		{sub: true, subject: ">"},
		{sub: true, subject: "presenced.heartbeat.>"},
		{sub: true, subject: presence.SubjectPublish},
		{sub: true, subject: "$SYS.>"},
	} {
		name := "publish " + tc.subject
		if tc.sub {
			name = "subscribe " + tc.subject
		}
		t.Run(name, func(t *testing.T) {
			for len(errs) > 0 {
				<-errs
			}
			if tc.sub {
				if _, err := nc.SubscribeSync(tc.subject); err != nil {
					t.Fatal(err)
				}
			} else if err := nc.PublishMsg(&nats.Msg{Subject: tc.subject, Reply: nc.NewRespInbox(), Data: tc.data}); err != nil {
				t.Fatal(err)
			}
			_ = nc.Flush()
			want := strings.ToLower(tc.subject)
			for {
				select {
				case err := <-errs:
					if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(strings.ToLower(err.Error()), want) {
						return
					}
					t.Logf("other error: %v", err)
				case <-time.After(5 * time.Second):
					t.Fatal("no permissions violation")
				}
			}
		})
	}

	t.Run("the token record was not written", func(t *testing.T) {
		publish(t, protocol.StatusOffline) // the connection is still good
		if _, ok := s.Store().Index().Token("evil"); ok {
			t.Fatal("the publisher wrote a token record")
		}
		if st := call(t, "GET", s.URL+"/v1/users", evil, nil, nil); st != 401 {
			t.Fatalf("the forged token answered %d", st)
		}
	})
}

// TestNATSExternalSampleConfig runs presenced on a nats-server configured
// by deploy/config/nats-server.conf (its cluster and TLS aside): publishers
// there are held as tightly as on the embedded server.
func TestNATSExternalSampleConfig(t *testing.T) {
	const presencedPassword = "test-presenced-nats-password-0123"
	t.Setenv("PRESENCED_NATS_PASSWORD", presencedPassword)
	t.Setenv("PUBLISHER_NATS_PASSWORD", testPublisherPassword)
	t.Setenv("SYS_NATS_PASSWORD", "test-sys-nats-password-0123")
	t.Setenv("ROUTE_NATS_PASSWORD", testClusterPassword)
	t.Setenv("NATS_ROUTE_1", "nats-route://route:"+testClusterPassword+"@127.0.0.1:1")
	t.Setenv("NATS_ROUTE_2", "nats-route://route:"+testClusterPassword+"@127.0.0.1:2")
	opts, err := server.ProcessConfigFile("../deploy/config/nats-server.conf")
	if err != nil {
		t.Fatal(err)
	}
	if opts.Cluster.Username == "" || opts.Cluster.Password != testClusterPassword {
		t.Fatalf("the sample's routes have no authorization: %+v", opts.Cluster)
	}
	opts.Host, opts.Port = "127.0.0.1", -1
	opts.StoreDir = t.TempDir()
	opts.Cluster, opts.Routes = server.ClusterOpts{}, nil // one server here
	opts.HTTPPort = 0
	opts.NoLog, opts.NoSigs = true, true
	ns := runNATSServer(t, opts)
	url := ns.ClientURL()
	if _, err := natsDial(t, url); !refused(err) {
		t.Fatalf("anonymous client: want an authorization violation, got %v", err)
	}
	s := startServer(t, "", func(c *broker.Config) {
		c.NATSURL = strings.Replace(url, "nats://", "nats://presenced:"+presencedPassword+"@", 1)
	})
	if u := s.NATSClientURL(); strings.Contains(u, presencedPassword) || !strings.HasPrefix(u, "nats://127.0.0.1:") {
		t.Fatalf("NATSClientURL shows %q", u)
	}
	checkPublisher(t, s, url, nats.UserInfo("publisher", testPublisherPassword))
}

// TestNATSConfig: options that would leave NATS open are refused at New.
func TestNATSConfig(t *testing.T) {
	_, pub := nkeyUser(t)
	kp, _ := nkeys.CreateUser()
	seed, _ := kp.Seed()
	cluster := func(c *broker.Config) {
		c.ClusterName, c.ClusterListen, c.Routes = "c", "127.0.0.1:0", []string{"nats-route://127.0.0.1:1"}
	}
	for _, tc := range []struct {
		name string
		mod  func(*broker.Config)
		ok   bool
	}{
		{"client port without a credential", func(c *broker.Config) { c.NATSListen = "127.0.0.1:0" }, false},
		{"client port for a publisher", func(c *broker.Config) {
			c.NATSListen, c.NATSPublisherPassword = "127.0.0.1:0", testPublisherPassword
		}, true},
		{"client port for an nkey", func(c *broker.Config) { c.NATSListen, c.NATSPublisherNKey = "127.0.0.1:0", pub }, true},
		{"client port for the admin only", func(c *broker.Config) {
			c.NATSListen, c.NATSAdminPassword = "127.0.0.1:0", testNATSAdminPassword
		}, true},
		{"a seed instead of a public nkey", func(c *broker.Config) { c.NATSListen, c.NATSPublisherNKey = "127.0.0.1:0", string(seed) }, false},
		{"publisher and admin of one name", func(c *broker.Config) {
			c.NATSListen, c.NATSPublisherPassword, c.NATSAdminUser = "127.0.0.1:0", testPublisherPassword, "publisher"
		}, false},
		{"cluster without route authentication", cluster, false},
		{"cluster with a password", func(c *broker.Config) { cluster(c); c.ClusterPassword = testClusterPassword }, true},
		{"cluster with TLS", func(c *broker.Config) {
			cluster(c)
			c.ClusterTLSCertFile, c.ClusterTLSKeyFile, c.ClusterTLSCAFile = "cert.pem", "key.pem", "ca.pem"
		}, true},
		{"cluster with TLS but no CA", func(c *broker.Config) {
			cluster(c)
			c.ClusterTLSCertFile, c.ClusterTLSKeyFile = "cert.pem", "key.pem"
		}, false},
		{"cluster declared insecure", func(c *broker.Config) { cluster(c); c.ClusterInsecure = true }, true},
		{"a route that is no URL", func(c *broker.Config) {
			cluster(c)
			c.ClusterPassword, c.Routes = testClusterPassword, []string{"node-2"}
		}, false},
		{"external NATS with route credentials", func(c *broker.Config) {
			c.NATSURL, c.ClusterPassword = "nats://127.0.0.1:4222", testClusterPassword
		}, false},
		{"external NATS with publisher credentials", func(c *broker.Config) {
			c.NATSURL, c.NATSPublisherPassword = "nats://127.0.0.1:4222", testPublisherPassword
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := broker.Config{DataDir: t.TempDir(), Logger: zaptest.NewLogger(t)}
			tc.mod(&cfg)
			_, err := broker.New(cfg)
			switch {
			case tc.ok && err != nil:
				t.Fatalf("refused: %v", err)
			case !tc.ok && !errors.Is(err, broker.ErrConfig):
				t.Fatalf("want ErrConfig, got %v", err)
			case err != nil:
				t.Log(err)
			}
		})
	}
}

// TestNATSPasswordFiles: passwords come from files, without their final
// newline, and a password given twice is refused.
func TestNATSPasswordFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pub, admin, cluster, empty := write("pub", "p-secret\n"), write("admin", "a-secret\r\n"), write("cluster", "c-secret"), write("empty", "\n")
	build := func(args ...string) (broker.Config, error) {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		b := broker.Flags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return b()
	}
	c, err := build("--nats-publisher-password-file", pub, "--nats-admin-password-file", admin, "--cluster-password-file", cluster)
	if err != nil {
		t.Fatal(err)
	}
	if c.NATSPublisherPassword != "p-secret" || c.NATSAdminPassword != "a-secret" || c.ClusterPassword != "c-secret" {
		t.Fatalf("passwords read: %q %q %q", c.NATSPublisherPassword, c.NATSAdminPassword, c.ClusterPassword)
	}
	if c.NATSPublisherUser != "publisher" || c.NATSAdminUser != "admin" || c.ClusterUser != "presenced" {
		t.Fatalf("default users: %q %q %q", c.NATSPublisherUser, c.NATSAdminUser, c.ClusterUser)
	}
	for _, args := range [][]string{
		{"--cluster-password", "x", "--cluster-password-file", cluster},
		{"--nats-publisher-password-file", empty},
		{"--nats-admin-password-file", filepath.Join(dir, "missing")},
	} {
		if _, err := build(args...); !errors.Is(err, broker.ErrConfig) {
			t.Errorf("%v: want ErrConfig, got %v", args, err)
		}
	}
}

// TestNATSAdoptsDataFromBeforeAccounts: a data directory written when the
// embedded server had no accounts (its streams in the global account) is
// taken over with its membership; a cluster's such data is refused.
func TestNATSAdoptsDataFromBeforeAccounts(t *testing.T) {
	dir := t.TempDir()
	ns := natstest.StartWith(t, natstest.Options{StoreDir: filepath.Join(dir, "jetstream")})
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	store, err := membership.Open(ctx, membership.Config{JetStream: js})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.CreateUser(ctx, membership.User{ID: "olduser", Username: "olduser"}); err != nil {
		t.Fatal(err)
	}
	store.Close()
	nc.Close()
	ns.Shutdown()
	ns.WaitForShutdown()

	s := startServer(t, dir)
	if st := call(t, "GET", s.URL+"/v1/users/olduser", s.Admin, nil, nil); st != 200 {
		t.Fatalf("the user written before accounts: %d", st)
	}

	t.Run("a cluster's data is refused", func(t *testing.T) {
		dir := t.TempDir()
		for _, d := range []string{"jetstream/jetstream/$G/streams/KV_presenced_membership", "jetstream/jetstream/$SYS/_js_/_meta_"} {
			if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		srv, err := broker.New(broker.Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", Logger: zaptest.NewLogger(t),
			ClusterName: "c", ClusterListen: "127.0.0.1:0", Routes: []string{"nats-route://127.0.0.1:1"}, ClusterPassword: testClusterPassword})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Start(ctx); !errors.Is(err, broker.ErrConfig) {
			t.Fatalf("want ErrConfig, got %v", err)
		}
	})
}

package broker_test

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/presenced/presenced/broker"
)

// TestExampleConfigDocumentsEveryFlag keeps deploy/config/presenced.conf
// complete: every option of the command appears in it.
func TestExampleConfigDocumentsEveryFlag(t *testing.T) {
	b, err := os.ReadFile("../deploy/config/presenced.conf")
	if err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	broker.Flags(fs)
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name != "config" && !strings.Contains(string(b), "# "+f.Name) {
			t.Errorf("deploy/config/presenced.conf does not document --%s", f.Name)
		}
	})
}

func TestFlagsBuildConfig(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	build := broker.Flags(fs)
	if err := fs.Parse([]string{"--routes", "nats-route://a:1, nats-route://b:2", "--allowed-origins", "*", "--log-level", "debug"}); err != nil {
		t.Fatal(err)
	}
	c, err := build()
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Routes) != 2 || c.Routes[1] != "nats-route://b:2" || c.AllowedOrigins[0] != "*" {
		t.Fatalf("config: %+v", c)
	}
	fs = flag.NewFlagSet("x", flag.ContinueOnError)
	build = broker.Flags(fs)
	_ = fs.Parse([]string{"--log-level", "loud"})
	if _, err := build(); err == nil {
		t.Fatal("bad log level accepted")
	}
}

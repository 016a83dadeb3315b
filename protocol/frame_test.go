package protocol

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestGolden compares every example frame with testdata/<name>.json. Run
// with -update after a deliberate change of the wire format, and review the
// diff: it is a change of the protocol.
func TestGolden(t *testing.T) {
	check := func(t *testing.T, name string, got []byte) {
		t.Helper()
		path := filepath.Join("testdata", name+".json")
		got = append(got, '\n')
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -update to create it)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s changed:\n got %s\nwant %s", path, got, want)
		}
	}
	for _, c := range clientCases {
		t.Run("client/"+c.name, func(t *testing.T) {
			b, err := EncodeClientFrame(c.frame)
			if err != nil {
				t.Fatal(err)
			}
			check(t, "client_"+c.name, b)
		})
	}
	for _, c := range serverCases {
		t.Run("server/"+c.name, func(t *testing.T) {
			check(t, "server_"+c.name, c.encode(nil))
		})
	}
}

// TestGoldenFilesHaveCases catches golden files left behind by a removed case.
func TestGoldenFilesHaveCases(t *testing.T) {
	names := map[string]bool{}
	for _, c := range clientCases {
		names["client_"+c.name+".json"] = true
	}
	for _, c := range serverCases {
		names["server_"+c.name+".json"] = true
	}
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !names[filepath.Base(f)] {
			t.Errorf("%s has no case", f)
		}
	}
}

// TestEveryOpHasACase makes adding an op without a golden frame fail.
func TestEveryOpHasACase(t *testing.T) {
	seen := map[Op]bool{}
	for _, c := range clientCases {
		seen[c.frame.Op] = true
	}
	for _, c := range serverCases {
		seen[c.want.Op] = true
	}
	for _, op := range allOps {
		if !seen[op] {
			t.Errorf("op %q has no example frame", op)
		}
	}
}

var allOps = []Op{
	OpSubscribe, OpUnsubscribe, OpSetStatus, OpQuery, OpWatchCounts, OpUnwatchCounts, OpPing, OpRefresh,
	OpHello, OpSnapshot, OpResumed, OpDelta, OpCounts, OpStatuses, OpOK, OpPong, OpError,
}

func TestOpDirection(t *testing.T) {
	for _, op := range allOps {
		if op.ClientOp() == op.ServerOp() {
			t.Errorf("op %q: ClientOp %v, ServerOp %v", op, op.ClientOp(), op.ServerOp())
		}
	}
}

func TestRoundTripClient(t *testing.T) {
	for _, c := range clientCases {
		t.Run(c.name, func(t *testing.T) {
			b, err := EncodeClientFrame(c.frame)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeClientFrame(b)
			if err != nil {
				t.Fatalf("decode %s: %v", b, err)
			}
			if !reflect.DeepEqual(got, c.frame) {
				t.Errorf("round trip of %s:\n got %+v\nwant %+v", b, got, c.frame)
			}
		})
	}
}

func TestRoundTripServer(t *testing.T) {
	for _, c := range serverCases {
		t.Run(c.name, func(t *testing.T) {
			b := c.encode([]byte("prefix")) // appends after existing content
			if !bytes.HasPrefix(b, []byte("prefix")) {
				t.Fatalf("encoder dropped the prefix: %s", b)
			}
			got, err := DecodeServerFrame(b[len("prefix"):])
			if err != nil {
				t.Fatalf("decode %s: %v", b, err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("round trip of %s:\n got %+v\nwant %+v", b, got, c.want)
			}
		})
	}
}

// TestREADMEShowsGoldenFrames keeps the specification's examples equal to
// what the code sends: each golden frame appears verbatim in README.md.
func TestREADMEShowsGoldenFrames(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(readme, bytes.TrimSpace(b)) {
			t.Errorf("README.md lacks the example of %s:\n%s", filepath.Base(f), b)
		}
	}
	for _, c := range allCloseCodes {
		if !strings.Contains(string(readme), "| "+itoa(c)+" |") {
			t.Errorf("README.md lacks close code %d in its table", c)
		}
	}
	for _, code := range allErrorCodes {
		if !strings.Contains(string(readme), "`"+string(code)+"`") {
			t.Errorf("README.md lacks error code %s", code)
		}
	}
}

package broker_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/presenced/presenced/broker"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/protocol"
)

// TestWSSlowConsumerIsCut subscribes a client that stops reading, with a
// 4 KiB receive buffer, and floods its group with distinct changes: once
// the socket is full the connection's queue grows past --write-queue and
// the server cuts it, instead of holding an ever longer queue.
func TestWSSlowConsumerIsCut(t *testing.T) {
	s := startServer(t, "", func(c *broker.Config) {
		c.Coalesce = -1 // every change is its own frame
		c.Limits.WriteQueue = 16
		c.Limits.RESTRate = -1 // the setup makes 400 calls at once
	})
	// Changes of one user merge while they wait (the latest wins), so the
	// flood goes to many users: their changes cannot merge.
	const users = 200
	bigGroup(t, s, users)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := dialSmallWindow(ctx, t, s, "u0")
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"op":"subscribe","id":1,"group":"big"}`)); err != nil {
		t.Fatal(err)
	}
	// From here on the client reads nothing until the flood is over.

	cut := func() float64 { return metric(t, s, "presenced_slow_consumers_total") }
	for batch := 0; batch < 100 && cut() == 0; batch++ {
		flood(t, s, batch, users)
	}
	for deadline := time.Now().Add(30 * time.Second); cut() == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a client that reads nothing was never cut")
		}
	}
	// The client finds its connection ended once it reads what was sent.
	for {
		if _, _, err := c.Read(ctx); err != nil {
			if ctx.Err() != nil {
				t.Fatal("the cut connection stayed open")
			}
			t.Logf("client read ends with: %v", err)
			break
		}
	}
}

// bigGroup creates the group "big" with users u0…u(n-1).
func bigGroup(t *testing.T, s *testServer, n int) {
	t.Helper()
	call(t, "POST", s.URL+"/v1/groups", s.Admin, map[string]any{"id": "big", "name": "Big"}, nil)
	for i := range n {
		id := fmt.Sprintf("u%d", i)
		if st := call(t, "POST", s.URL+"/v1/users", s.Admin, map[string]any{"id": id, "username": "user-" + id}, nil); st != 201 {
			t.Fatalf("create %s: %d", id, st)
		}
		if st := call(t, "PUT", s.URL+"/v1/groups/big/members/"+id, s.Admin, nil, nil); st/100 != 2 {
			t.Fatalf("add %s: %d", id, st)
		}
	}
	waitMembers(t, s, "big", n)
}

// dialSmallWindow connects user with a 4 KiB receive buffer, so that a
// client that stops reading soon stops the server's writes to it.
func dialSmallWindow(ctx context.Context, t *testing.T, s *testServer, user string) *websocket.Conn {
	t.Helper()
	dialer := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.URL, "http")+"/v1/ws", &websocket.DialOptions{
		Subprotocols: []string{protocol.Subprotocol},
		HTTPHeader:   http.Header{"Authorization": {"Bearer " + userJWT(t, user, time.Hour)}},
		HTTPClient:   &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}},
	})
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(1 << 22)
	return c
}

// flood publishes 1,000 status changes over users u1…u(users-1), each
// with a text of about 1 KiB that no other change has, and returns the
// revision of the last.
func flood(t *testing.T, s *testServer, batch, users int) uint64 {
	t.Helper()
	text := strings.Repeat("x", protocol.MaxStatusText-8)
	events := make([]map[string]any, 1000)
	for i := range events {
		events[i] = map[string]any{"user": fmt.Sprintf("u%d", 1+i%(users-1)), "status": "online", "source": "flood",
			"text": fmt.Sprintf("%07d%s", batch*1000+i, text)}
	}
	var res struct{ Results []presence.PublishReply }
	if st := call(t, "POST", s.URL+"/v1/presence/status/batch", s.Admin, map[string]any{"events": events}, &res); st != 200 {
		t.Fatalf("batch %d: %d", batch, st)
	}
	var last uint64
	for _, r := range res.Results {
		if !r.OK {
			t.Fatalf("batch %d: %+v", batch, r)
		}
		last = max(last, r.Rev)
	}
	return last
}

// TestWSLateReaderGetsMergedDeltas: a client that stops reading while its
// group changes thousands of times gets, once it reads again, the changes
// its connection could not take merged into a few frames, the latest per
// user, with revisions that never go back, and ends with the group as the
// server has it. Before, it got one frame per change: 5,000 frames here.
func TestWSLateReaderGetsMergedDeltas(t *testing.T) {
	s := startServer(t, "", func(c *broker.Config) {
		c.Coalesce = -1 // every change is its own batch
		c.Limits.WriteQueue = 10000
		c.Limits.RESTRate = -1
	})
	const users, batches = 200, 5
	bigGroup(t, s, users)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := dialSmallWindow(ctx, t, s, "u0")
	defer c.CloseNow()
	read := func() protocol.ServerFrame {
		t.Helper()
		_, data, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		f, err := protocol.DecodeServerFrame(data)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	if f := read(); f.Op != protocol.OpHello {
		t.Fatalf("first frame %s", f.Op)
	}
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"op":"subscribe","id":1,"group":"big"}`)); err != nil {
		t.Fatal(err)
	}
	snap := read()
	if snap.Op != protocol.OpSnapshot {
		t.Fatalf("subscribe answered %s", snap.Op)
	}
	// The client reads nothing while 5,000 changes of about 1 KiB go out:
	// the server's writes to it stop once its socket is full.
	var last uint64
	for batch := range batches {
		last = flood(t, s, batch, users)
	}
	// The stream goes on with entries no subscriber of the group is sent
	// (another group's change here; the node's lease refresh every 2s
	// does the same): the snapshot's revision is past the group's last
	// change, which is what the client's revision reaches.
	if st := call(t, "POST", s.URL+"/v1/users", s.Admin, map[string]any{"id": "outsider", "username": "outsider"}, nil); st != 201 {
		t.Fatalf("create outsider: %d", st)
	}
	var other presence.PublishReply
	if st := call(t, "POST", s.URL+"/v1/presence/status", s.Admin,
		map[string]any{"user": "outsider", "status": "online", "source": "other"}, &other); st != 200 {
		t.Fatalf("outsider's status: %d", st)
	}
	if err := s.Engine().WaitRev(ctx, other.Rev); err != nil {
		t.Fatal(err)
	}
	want := s.Engine().Snapshot("big")
	texts := map[string]string{}
	rev := snap.Rev
	frames, changes := 0, 0
	for texts[fmt.Sprintf("u%d", users-1)] != textOf(want, fmt.Sprintf("u%d", users-1)) || rev < last {
		f := read()
		if f.Op != protocol.OpDelta {
			continue
		}
		frames++
		changes += len(f.Changes)
		if f.Rev <= rev {
			t.Fatalf("delta at rev %d after rev %d", f.Rev, rev)
		}
		for _, m := range f.Changes {
			if m.Rev <= rev || m.Rev > f.Rev {
				t.Fatalf("change of %s at rev %d in a delta at %d, after %d", m.User, m.Rev, f.Rev, rev)
			}
			texts[m.User] = m.Text
		}
		rev = f.Rev
	}
	for _, m := range want.Members {
		if m.User != "u0" && texts[m.User] != m.Text {
			t.Fatalf("%s: the client has text %.12q…, the server %.12q…", m.User, texts[m.User], m.Text)
		}
	}
	t.Logf("%d changes arrived in %d frames with %d changes in all", batches*1000, frames, changes)
	if frames > batches*1000/2 {
		t.Fatalf("%d frames for %d changes: a late reader's changes were not merged", frames, batches*1000)
	}
}

func textOf(snap presence.Snapshot, user string) string {
	for _, m := range snap.Members {
		if m.User == user {
			return m.Text
		}
	}
	return ""
}

// metric reads one unlabelled counter or gauge from /metrics.
func metric(t testing.TB, s *testServer, name string) float64 {
	t.Helper()
	resp, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

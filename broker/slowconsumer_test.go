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
	call(t, "POST", s.URL+"/v1/groups", s.Admin, map[string]any{"id": "big", "name": "Big"}, nil)
	for i := range users {
		id := fmt.Sprintf("u%d", i)
		if st := call(t, "POST", s.URL+"/v1/users", s.Admin, map[string]any{"id": id, "username": "user-" + id}, nil); st != 201 {
			t.Fatalf("create %s: %d", id, st)
		}
		if st := call(t, "PUT", s.URL+"/v1/groups/big/members/"+id, s.Admin, nil, nil); st/100 != 2 {
			t.Fatalf("add %s: %d", id, st)
		}
	}
	waitMembers(t, s, "big", users)

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
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.URL, "http")+"/v1/ws", &websocket.DialOptions{
		Subprotocols: []string{protocol.Subprotocol},
		HTTPHeader:   http.Header{"Authorization": {"Bearer " + userJWT(t, "u0", time.Hour)}},
		HTTPClient:   &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"op":"subscribe","id":1,"group":"big"}`)); err != nil {
		t.Fatal(err)
	}
	// From here on the client reads nothing until the flood is over.

	text := strings.Repeat("x", protocol.MaxStatusText-8)
	cut := func() float64 { return metric(t, s, "presenced_slow_consumers_total") }
	for batch := 0; batch < 100 && cut() == 0; batch++ {
		events := make([]map[string]any, 1000)
		for i := range events {
			events[i] = map[string]any{"user": fmt.Sprintf("u%d", 1+i%(users-1)), "status": "online", "source": "flood",
				"text": fmt.Sprintf("%07d%s", batch*1000+i, text)}
		}
		var res struct{ Results []struct{ OK bool } }
		if st := call(t, "POST", s.URL+"/v1/presence/status/batch", s.Admin, map[string]any{"events": events}, &res); st != 200 {
			t.Fatalf("batch %d: %d", batch, st)
		}
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

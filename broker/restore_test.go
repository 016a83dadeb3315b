package broker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/protocol/client"
)

// TestReconnectRestoresManyGroups: a user in 300 groups reconnects; the Go
// client sends every subscribe of its restore at once, and the server must
// take them all, instead of answering rate_limited past the op burst and
// cutting the connection (4008) again and again.
func TestReconnectRestoresManyGroups(t *testing.T) {
	const groups = 300
	s := startServer(t, "")
	call(t, "POST", s.URL+"/v1/users", s.Admin, map[string]any{"id": "a", "username": "a"}, nil)
	var lines strings.Builder
	for i := range groups {
		fmt.Fprintf(&lines, `{"kind":"group","id":"g%03d","name":"G"}`+"\n"+`{"kind":"member","groupId":"g%03d","userId":"a"}`+"\n", i, i)
	}
	if st := call(t, "POST", s.URL+"/v1/import", s.Admin, lines.String(), nil); st != 200 {
		t.Fatalf("import: %d", st)
	}
	waitMembers(t, s, fmt.Sprintf("g%03d", groups-1), 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, "ws"+strings.TrimPrefix(s.URL, "http")+"/v1/ws", &client.Options{
		Token: userJWT(t, "a", time.Hour), Reconnect: true, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range groups {
		// Subscribed one after the other, as a user opening them would.
		if _, err := c.Subscribe(ctx, fmt.Sprintf("g%03d", i)); err != nil {
			t.Fatalf("subscribe %d: %v", i, err)
		}
		if i%40 == 39 {
			time.Sleep(time.Second) // stay under the op rate
		}
	}
	go func() {
		for range c.Events() { // read, so that none is dropped
		}
	}()
	s.DropWebSockets()
	for deadline := time.Now().Add(30 * time.Second); ; {
		if c.Reconnects() >= 1 && c.Connected() && len(c.Groups()) == groups {
			// Every subscription is still there after a moment of quiet.
			time.Sleep(500 * time.Millisecond)
			if c.Reconnects() == 1 && len(c.Groups()) == groups {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the reconnect: %d reconnects, %d of %d groups", c.Reconnects(), len(c.Groups()), groups)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

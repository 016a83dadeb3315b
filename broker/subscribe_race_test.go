package broker_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/presenced/presenced/broker"
	"github.com/presenced/presenced/protocol"
)

// TestFirstDeltaAfterSubscribeArrives: a change of the group made right
// after the subscription is registered, and handed to the connection's
// writer before the snapshot is written, must reach the client after the
// snapshot. The connection recorded the group only after registering it,
// so the writer took such a batch for one of a group the client had left
// and dropped it: in a group of 10,000 coming online, subscribers stayed
// a member short for good.
func TestFirstDeltaAfterSubscribeArrives(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	c := mustDial(t, s, userJWT(t, "a", time.Hour))
	var once sync.Once
	broker.SetSubscribedHook(func() {
		once.Do(func() {
			if st := call(t, "POST", s.URL+"/v1/presence/status", s.Admin,
				map[string]any{"user": "b", "status": "busy", "source": "crm"}, nil); st != http.StatusOK {
				t.Errorf("publish: %d", st)
			}
			// Let the writer take the batch, as it does when the
			// fan-out is faster than this subscribe.
			time.Sleep(200 * time.Millisecond)
		})
	})
	t.Cleanup(func() { broker.SetSubscribedHook(nil) })
	snap := c.reply(protocol.ClientFrame{Op: protocol.OpSubscribe, Group: "team"})
	if snap.Op != protocol.OpSnapshot {
		t.Fatalf("subscribe answered %+v", snap)
	}
	for _, m := range snap.Members {
		if m.User == "b" {
			t.Fatalf("the snapshot (rev %d) already has b: %+v", snap.Rev, m)
		}
	}
	if m := c.statusIn("team", "b", protocol.StatusBusy); m.Rev <= snap.Rev {
		t.Fatalf("b's change at rev %d is not after the snapshot's %d", m.Rev, snap.Rev)
	}
}

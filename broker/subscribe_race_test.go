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

// TestSubscribeRacingARemoval: a member is removed from the group between
// the subscribe's check of the authority and the subscription's
// registration. The removal's recheck of the connection found nothing to
// revoke yet, and the subscription went on: the snapshot, then every
// delta of a group the user no longer belongs to. The subscribe must
// answer forbidden instead.
func TestSubscribeRacingARemoval(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	a := mustDial(t, s, userJWT(t, "a", time.Hour))
	removeAtTheCheck(t, s)
	r := a.reply(protocol.ClientFrame{Op: protocol.OpSubscribe, Group: "team"})
	if r.Op != protocol.OpError || r.Code != protocol.CodeForbidden {
		t.Fatalf("subscribe while a was removed: %+v", r)
	}
	learnsNothingOfB(t, s, a)
}

// TestWatchCountsRacingARemoval: as TestSubscribeRacingARemoval, for a
// counts watch: the removal's recheck found no watch to end yet, and the
// removed member went on getting the group's counts. Once the watch is
// answered, the member must lose it: no count of the group follows.
func TestWatchCountsRacingARemoval(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	a := mustDial(t, s, userJWT(t, "a", time.Hour))
	removeAtTheCheck(t, s)
	if r := a.reply(protocol.ClientFrame{Op: protocol.OpWatchCounts, Groups: []string{"team"}}); r.Op != protocol.OpCounts {
		t.Fatalf("watch_counts: %+v", r)
	}
	learnsNothingOfB(t, s, a)
}

// removeAtTheCheck removes a from team when the next subscribe or counts
// watch has passed its check of the authority, and lets the removal's
// recheck of a's connection run before the op goes on.
func removeAtTheCheck(t *testing.T, s *testServer) {
	t.Helper()
	broker.SetMayWatchHook(func() {
		broker.SetMayWatchHook(nil)
		if st := call(t, "DELETE", s.URL+"/v1/groups/team/members/a", s.Admin, nil, nil); st != http.StatusNoContent {
			t.Errorf("remove a: %d", st)
		}
		time.Sleep(100 * time.Millisecond)
	})
	t.Cleanup(func() { broker.SetMayWatchHook(nil) })
}

// learnsNothingOfB connects b, whose online changes team: a, removed from
// it, must receive nothing.
func learnsNothingOfB(t *testing.T, s *testServer, a *wsClient) {
	t.Helper()
	mustDial(t, s, userJWT(t, "b", time.Hour))
	select {
	case f := <-a.frames:
		t.Fatalf("a, removed, received %+v", f)
	case <-time.After(300 * time.Millisecond):
	}
}

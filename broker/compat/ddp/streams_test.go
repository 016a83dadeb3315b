package ddp_test

import (
	"context"
	"testing"
	"time"

	"github.com/presenced/presenced/broker/compat/ddp/ddptest"
	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/protocol"
)

func loggedIn(t *testing.T, b *bed, user string) *ddptest.Client {
	t.Helper()
	c := ddptest.Dial(t, b.url+"/websocket", nil)
	c.Connect()
	c.Login(b.tokens[user])
	b.status(user, protocol.StatusOnline)
	return c
}

// TestUserPresenceStream: stream-user-presence keyed by a user id sends
// every change of that user, in Rocket.Chat's shape.
func TestUserPresenceStream(t *testing.T) {
	b := newBed(t)
	a := loggedIn(t, b, alice)
	if m := a.Sub("stream-user-presence", bob, msg{"useCollection": false, "args": []any{nil}}); m.Type() != "ready" {
		t.Fatalf("sub: %s", m.JSON())
	}
	bb := loggedIn(t, b, bob)
	m := a.WaitChanged("stream-user-presence", ddptest.Args([]any{"bob", 1, ""}))
	if m.JSON() != `{"collection":"stream-user-presence","fields":{"args":[["bob",1,""]],"eventName":"bob","uid":"bob"},"id":"bob","msg":"changed"}` {
		t.Fatalf("changed %s", m.JSON())
	}
	bb.Result("UserPresence:setDefaultStatus", "busy")
	a.WaitChanged("stream-user-presence", ddptest.Args([]any{"bob", 3, ""}))
	bb.Result("setUserStatus", "away", "lunch")
	a.WaitChanged("stream-user-presence", ddptest.Args([]any{"bob", 2, "lunch"}))
	bb.Result("UserPresence:setDefaultStatus", "offline")
	a.WaitChanged("stream-user-presence", ddptest.Args([]any{"bob", 0, "lunch"}))
	bb.Result("UserPresence:setDefaultStatus", "online")
	a.WaitChanged("stream-user-presence", ddptest.Args([]any{"bob", 1, ""}))
	_ = bb.Conn().CloseNow()
	a.WaitChanged("stream-user-presence", ddptest.Args([]any{"bob", 0, ""}))

	// unsub: nothing more.
	id := a.SubID()
	a.Send(msg{"msg": "unsub", "id": id})
	if m := a.Expect("nosub"); m.Str("id") != id || m["error"] != nil {
		t.Fatalf("unsub: %s", m.JSON())
	}
	loggedIn(t, b, bob)
	a.Quiet(300 * time.Millisecond)
}

// TestUserStatusStream: stream-notify-logged user-status sends every change
// the caller may see, with name and roles.
func TestUserStatusStream(t *testing.T) {
	b := newBed(t)
	a := loggedIn(t, b, alice)
	if m := a.Sub("stream-notify-logged", "user-status", msg{"useCollection": false, "args": []any{}}); m.Type() != "ready" {
		t.Fatalf("sub: %s", m.JSON())
	}
	if m := a.Sub("stream-notify-logged", "", false); ddptest.ErrorOf(m) != `{"error":"invalid-event-name","errorType":"Meteor.Error","isClientSafe":true,"message":"[invalid-event-name]"}` {
		t.Fatalf("empty event name: %s", m.JSON())
	}
	if m := a.Sub("stream-notify-logged", "updateAvatar", false); m.Type() != "ready" {
		t.Fatalf("another event: %s", m.JSON())
	}
	bb := loggedIn(t, b, bob)
	m := a.WaitChanged("stream-notify-logged", ddptest.Args([]any{"bob", "bob", 1, "", "Bob", []string{"user", "bot"}}))
	if m.JSON() != `{"collection":"stream-notify-logged","fields":{"args":[["bob","bob",1,"","Bob",["user","bot"]]],"eventName":"user-status"},"id":"id","msg":"changed"}` {
		t.Fatalf("changed %s", m.JSON())
	}
	bb.Result("setUserStatus", "busy", "focus")
	a.WaitChanged("stream-notify-logged", ddptest.Args([]any{"bob", "bob", 3, "focus", "Bob", []string{"user", "bot"}}))
	// carol shares no group with alice: her changes are not sent.
	cc := loggedIn(t, b, carol)
	cc.Result("UserPresence:setDefaultStatus", "away")
	b.status(carol, protocol.StatusAway)
	a.Quiet(300 * time.Millisecond)
}

// TestVisibilityPerChange: who may see whom is decided for every change:
// a user removed from the only group shared with the watcher sends nothing
// more, on either stream, and comes back when added again.
func TestVisibilityPerChange(t *testing.T) {
	b := newBed(t)
	a := loggedIn(t, b, alice)
	a.Sub("stream-user-presence", bob, msg{"useCollection": false})
	a.Sub("stream-user-presence", carol, msg{"useCollection": false}) // never visible
	a.Sub("stream-notify-logged", "user-status", msg{"useCollection": false})
	bb := loggedIn(t, b, bob)
	a.WaitChanged("stream-user-presence", ddptest.Args([]any{"bob", 1, ""}))
	a.WaitChanged("stream-notify-logged", ddptest.Args([]any{"bob", "bob", 1, "", "Bob", []string{"user", "bot"}}))
	cc := loggedIn(t, b, carol)
	cc.Result("UserPresence:setDefaultStatus", "busy")
	b.status(carol, protocol.StatusBusy)

	ctx := context.Background()
	if err := b.store.DeleteMember(ctx, "team", bob); err != nil {
		t.Fatal(err)
	}
	bb.Result("UserPresence:setDefaultStatus", "busy")
	b.status(bob, protocol.StatusBusy)
	a.Quiet(300 * time.Millisecond)

	if _, err := b.store.PutMember(ctx, membership.Member{GroupID: "team", UserID: bob, Role: membership.RoleMember}); err != nil {
		t.Fatal(err)
	}
	bb.Result("UserPresence:setDefaultStatus", "away")
	a.WaitChanged("stream-user-presence", ddptest.Args([]any{"bob", 2, ""}))
	a.WaitChanged("stream-notify-logged", ddptest.Args([]any{"bob", "bob", 2, "", "Bob", []string{"user", "bot"}}))
}

// TestUserList: the web client's form: eventName "" with {added, removed};
// the first subscription holds the list, later ones edit it and end.
func TestUserList(t *testing.T) {
	b := newBed(t)
	a := loggedIn(t, b, alice)
	if m := a.Sub("stream-user-presence", "", msg{"added": []string{bob, carol}}); m.Type() != "ready" {
		t.Fatalf("list: %s", m.JSON())
	}
	bb := loggedIn(t, b, bob)
	a.WaitChanged("stream-user-presence", ddptest.Args([]any{"bob", 1, ""}))
	if m := a.Sub("stream-user-presence", "", msg{"removed": []string{bob}}); m.JSON() != `{"id":"`+m.Str("id")+`","msg":"nosub"}` {
		t.Fatalf("edit of the list: %s", m.JSON())
	}
	bb.Result("UserPresence:setDefaultStatus", "busy")
	b.status(bob, protocol.StatusBusy)
	a.Quiet(300 * time.Millisecond)
	a.Sub("stream-user-presence", "", msg{"added": []string{bob}})
	bb.Result("UserPresence:setDefaultStatus", "away")
	a.WaitChanged("stream-user-presence", ddptest.Args([]any{"bob", 2, ""}))
}

// TestUseCollection: useCollection true announces the event name as a
// document before ready, as Rocket.Chat's streamer does.
func TestUseCollection(t *testing.T) {
	b := newBed(t)
	a := loggedIn(t, b, alice)
	id := "c1"
	a.Send(msg{"msg": "sub", "id": id, "name": "stream-notify-logged", "params": []any{"user-status", true}})
	if m := a.Expect("added"); m.JSON() != `{"collection":"stream-notify-logged","fields":{"eventName":"user-status"},"id":"id","msg":"added"}` {
		t.Fatalf("added %s", m.JSON())
	}
	a.Expect("ready")
}

// TestLogoutEndsStreams: streams need a login; logout ends them with
// not-allowed and no change is sent after.
func TestLogoutEndsStreams(t *testing.T) {
	b := newBed(t)
	a := loggedIn(t, b, alice)
	a.Sub("stream-user-presence", bob, msg{"useCollection": false})
	res, docs := a.Call("logout")
	if res["error"] != nil || len(docs) != 2 || docs[0].Type() != "nosub" ||
		ddptest.ErrorOf(docs[0]) != `{"error":"not-allowed","errorType":"Meteor.Error","isClientSafe":true,"message":"[not-allowed]"}` {
		t.Fatalf("logout: %s %v", res.JSON(), docs)
	}
	loggedIn(t, b, bob)
	a.Quiet(300 * time.Millisecond)
}

// TestLoginAsAnotherUser: a second login as another user ends the first
// user's session and streams.
func TestLoginAsAnotherUser(t *testing.T) {
	b := newBed(t)
	a := loggedIn(t, b, alice)
	a.Sub("stream-user-presence", bob, msg{"useCollection": false})
	res, docs := a.Call("login", msg{"resume": b.tokens[bob]})
	if res.Map("result").Str("id") != bob || len(docs) != 3 || docs[0].Type() != "nosub" || docs[1].Type() != "removed" || docs[2].Type() != "added" {
		t.Fatalf("login as bob: %s %v", res.JSON(), docs)
	}
	b.status(alice, protocol.StatusOffline)
	b.status(bob, protocol.StatusOnline)
}

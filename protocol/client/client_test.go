package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/presenced/presenced/protocol"
	"github.com/presenced/presenced/protocol/internal/fakeserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wait bounds every wait for the server or the client. Tests never sleep:
// they wait for an event or a state and fail if it does not come.
const wait = 10 * time.Second

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	t.Cleanup(cancel)
	return ctx
}

func member(user string, st protocol.Status, text string) protocol.Member {
	return protocol.Member{User: user, Status: st, Text: text, Since: 1795000000000}
}

// dial connects a client with fast reconnects and closes it in cleanup.
func dial(t *testing.T, s *fakeserver.Server, opts *Options) *Client {
	t.Helper()
	if opts == nil {
		opts = &Options{}
	}
	if opts.Logger == nil {
		opts.Logger = zaptest.NewLogger(t)
	}
	if opts.MinBackoff == 0 {
		opts.MinBackoff, opts.MaxBackoff = time.Millisecond, 10*time.Millisecond
	}
	c, err := Dial(testContext(t), s.URL(), opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// next returns the next event, failing the test after wait.
func next(t *testing.T, c *Client) Event {
	t.Helper()
	select {
	case ev, ok := <-c.Events():
		if !ok {
			t.Fatal("events channel closed")
		}
		return ev
	case <-time.After(wait):
		t.Fatal("no event")
	}
	return Event{}
}

// nextOf returns the next event of type typ, failing on any other type.
func nextOf(t *testing.T, c *Client, typ EventType) Event {
	t.Helper()
	ev := next(t, c)
	if ev.Type != typ {
		t.Fatalf("got event %s (%+v), want %s", ev.Type, ev, typ)
	}
	return ev
}

// stripRev drops the revision fields, which the server's view does not keep.
func stripRev(ms []protocol.Member) []protocol.Member {
	out := make([]protocol.Member, len(ms))
	for i, m := range ms {
		m.Rev = 0
		out[i] = m
	}
	return out
}

func TestSubscribeAndDeltas(t *testing.T) {
	s := fakeserver.Start(t, fakeserver.Config{})
	s.Change("g1", member("u1", protocol.StatusOnline, ""))
	s.Change("g1", member("u2", protocol.StatusBusy, "In a meeting"))
	s.Change("g1", member("u3", protocol.StatusOffline, ""))
	c := dial(t, s, nil)
	ctx := testContext(t)
	nextOf(t, c, EventConnected)

	snap, err := c.Subscribe(ctx, "g1")
	if err != nil {
		t.Fatal(err)
	}
	want := []protocol.Member{
		member("u1", protocol.StatusOnline, ""),
		member("u2", protocol.StatusBusy, "In a meeting"),
		member("u3", protocol.StatusOffline, ""),
	}
	if snap.Group != "g1" || snap.Rev != 3 || snap.Epoch != "e1" || snap.Fresh || snap.Online != 2 || snap.Total != 3 ||
		!reflect.DeepEqual(snap.Members, want) {
		t.Fatalf("snapshot %+v", snap)
	}
	if ev := nextOf(t, c, EventSnapshot); !reflect.DeepEqual(ev.Members, want) || ev.Rev != 3 {
		t.Fatalf("snapshot event %+v", ev)
	}

	s.Change("g1", member("u3", protocol.StatusAway, "back soon"))
	ev := nextOf(t, c, EventDelta)
	if ev.Group != "g1" || ev.Rev != 4 || ev.Online != 3 || ev.Total != 3 || len(ev.Changes) != 1 ||
		ev.Changes[0].User != "u3" || ev.Changes[0].Status != protocol.StatusAway || ev.Changes[0].Rev != 4 {
		t.Fatalf("delta event %+v", ev)
	}
	gone := member("u2", protocol.StatusOffline, "")
	gone.Removed = true
	s.Change("g1", gone)
	nextOf(t, c, EventDelta)

	got := c.Members("g1")
	if !reflect.DeepEqual(stripRev(got), s.Members("g1")) {
		t.Errorf("Members = %+v\nserver has %+v", got, s.Members("g1"))
	}
	if cnt, ok := c.Counts("g1"); !ok || cnt != (protocol.GroupCount{Group: "g1", Online: 2, Total: 2, Rev: 5}) {
		t.Errorf("Counts = %+v, %v", cnt, ok)
	}
	if got := c.Groups(); !slices.Equal(got, []string{"g1"}) {
		t.Errorf("Groups = %v", got)
	}

	if err := c.Unsubscribe(ctx, "g1"); err != nil {
		t.Fatal(err)
	}
	if c.Members("g1") != nil {
		t.Error("Members after Unsubscribe is not nil")
	}
}

func TestRepliesCorrelate(t *testing.T) {
	s := fakeserver.Start(t, fakeserver.Config{})
	for i := range 8 {
		s.Change("g1", member(fmt.Sprintf("u%d", i), protocol.StatusOnline, ""))
	}
	c := dial(t, s, nil)
	ctx := testContext(t)

	// The server answers the next 8 requests in reverse order of arrival.
	const n = 8
	s.HoldReplies(n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			if i%2 == 1 {
				if err := c.Ping(ctx); err != nil {
					errs <- fmt.Errorf("ping %d: %w", i, err)
				}
				return
			}
			user := fmt.Sprintf("u%d", i)
			got, err := c.Query(ctx, []string{user})
			if err != nil || len(got) != 1 || got[0].User != user {
				errs <- fmt.Errorf("query %s: %+v, %v", user, got, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestServerErrors(t *testing.T) {
	s := fakeserver.Start(t, fakeserver.Config{Forbidden: []string{"secret"}})
	s.CreateGroup("secret")
	c := dial(t, s, nil)
	ctx := testContext(t)

	tests := []struct {
		name string
		call func() error
		code protocol.ErrorCode
		sent bool // whether the request reached the server
	}{
		{"forbidden", func() error { _, err := c.Subscribe(ctx, "secret"); return err }, protocol.CodeForbidden, true},
		{"not found", func() error { _, err := c.Subscribe(ctx, "nope"); return err }, protocol.CodeNotFound, true},
		{"unsubscribe unknown", func() error { return c.Unsubscribe(ctx, "nope") }, protocol.CodeNotFound, true},
		{"invalid group", func() error { _, err := c.Subscribe(ctx, "a.b"); return err }, protocol.CodeBadRequest, false},
		{"invalid status", func() error { return c.SetStatus(ctx, "dnd", "", 0) }, protocol.CodeBadRequest, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(s.Received())
			err := tt.call()
			e, ok := errors.AsType[*protocol.Error](err)
			if !ok || e.Code != tt.code {
				t.Fatalf("error %v, want *protocol.Error %s", err, tt.code)
			}
			if sent := len(s.Received()) > before; sent != tt.sent {
				t.Errorf("sent to server: %v, want %v", sent, tt.sent)
			}
		})
	}
	if c.Members("secret") != nil || c.Groups() != nil {
		t.Errorf("failed subscriptions left state: %v", c.Groups())
	}
}

func TestHandshake(t *testing.T) {
	s := fakeserver.Start(t, fakeserver.Config{Tokens: map[string]string{"tok1": "alice"}, Node: "n7", Expires: 1795003600})
	hdr := http.Header{}
	hdr.Set("X-Trace", "1")
	c := dial(t, s, &Options{Token: "tok1", Device: "ios", ClientName: "app/2.1", HTTPHeader: hdr})
	h := c.Hello()
	if h.User != "alice" || h.Node != "n7" || h.Session == "" || h.Expires != 1795003600 {
		t.Errorf("Hello = %+v", h)
	}
	hs := s.Handshakes()
	if len(hs) != 1 {
		t.Fatalf("%d handshakes", len(hs))
	}
	if hs[0].Token != "tok1" || hs[0].TokenVia != "header" || hs[0].Device != "ios" || hs[0].Client != "app/2.1" {
		t.Errorf("handshake %+v", hs[0])
	}
	if !slices.Contains(hs[0].Subprotocols, protocol.Subprotocol) {
		t.Errorf("subprotocols %v lack %s", hs[0].Subprotocols, protocol.Subprotocol)
	}
	if hdr.Get("Authorization") != "" {
		t.Error("Dial modified Options.HTTPHeader")
	}
}

func TestDialUnauthorized(t *testing.T) {
	s := fakeserver.Start(t, fakeserver.Config{Tokens: map[string]string{"good": "alice"}})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	_, err := Dial(testContext(t), s.URL(), &Options{Token: "bad", HTTPClient: &http.Client{Transport: tr}})
	if e, ok := errors.AsType[*protocol.Error](err); !ok || e.Code != protocol.CodeUnauthorized {
		t.Fatalf("Dial with a bad token: %v, want *protocol.Error unauthorized", err)
	}
}

// TestReconnectResume is the heart of the client: after a forced
// disconnect it reconnects, resumes every group from its revision, and the
// caller sees exactly the changes it missed, once each.
func TestReconnectResume(t *testing.T) {
	s := fakeserver.Start(t, fakeserver.Config{})
	s.Change("g1", member("u1", protocol.StatusOnline, ""))
	s.Change("g1", member("u2", protocol.StatusOnline, ""))
	s.Change("g1", member("u3", protocol.StatusAway, ""))
	s.Change("g2", member("u4", protocol.StatusOnline, ""))
	s.Change("other", member("u9", protocol.StatusOnline, ""))
	c := dial(t, s, &Options{Reconnect: true})
	ctx := testContext(t)
	nextOf(t, c, EventConnected)
	for _, g := range []string{"g1", "g2"} {
		if _, err := c.Subscribe(ctx, g); err != nil {
			t.Fatal(err)
		}
		nextOf(t, c, EventSnapshot)
	}

	// Every change from here on must reach the caller exactly once.
	var all []protocol.Member
	record := func(rev uint64, group string, m protocol.Member) {
		m.Rev = rev
		all = append(all, m)
	}
	m := member("u1", protocol.StatusAway, "")
	record(s.Change("g1", m), "g1", m)
	if ev := nextOf(t, c, EventDelta); ev.Changes[0].Rev != all[0].Rev {
		t.Fatalf("delta %+v", ev)
	}

	// Drop the connection; these changes happen before the client can
	// reconnect.
	var missed map[string][]protocol.Member = map[string][]protocol.Member{}
	s.Disconnect(0, func(b *fakeserver.Batch) {
		for _, ch := range []struct {
			group string
			m     protocol.Member
		}{
			{"g1", member("u2", protocol.StatusBusy, "call")},
			{"g2", member("u4", protocol.StatusOffline, "")},
			{"other", member("u9", protocol.StatusAway, "")}, // not subscribed
			{"g1", protocol.Member{User: "u3", Status: protocol.StatusOffline, Since: 1795000000000, Removed: true}},
			{"g1", member("u5", protocol.StatusOnline, "new")},
		} {
			rev := b.Change(ch.group, ch.m)
			if ch.group != "other" {
				ch.m.Rev = rev
				missed[ch.group] = append(missed[ch.group], ch.m)
				all = append(all, ch.m)
			}
		}
	})

	if ev := nextOf(t, c, EventDisconnected); ev.Err == nil {
		t.Error("EventDisconnected without Err")
	}
	nextOf(t, c, EventConnected)
	resumed := map[string][]protocol.Member{}
	for range 2 {
		ev := nextOf(t, c, EventResumed)
		if ev.Epoch != "e1" {
			t.Errorf("resumed %s in epoch %q", ev.Group, ev.Epoch)
		}
		resumed[ev.Group] = ev.Changes
	}
	if !reflect.DeepEqual(resumed, missed) {
		t.Errorf("resumed changes\n%+v\nwant exactly the missed ones\n%+v", resumed, missed)
	}

	// Live again: the next change arrives as a delta, and nothing else.
	m = member("u5", protocol.StatusBusy, "")
	rev := s.Change("g1", m)
	record(rev, "g1", m)
	ev := nextOf(t, c, EventDelta)
	if len(ev.Changes) != 1 || ev.Changes[0].Rev != rev {
		t.Errorf("delta after resume %+v", ev)
	}

	if got := c.Reconnects(); got != 1 {
		t.Errorf("Reconnects = %d", got)
	}
	for _, g := range []string{"g1", "g2"} {
		if got := stripRev(c.Members(g)); !reflect.DeepEqual(got, s.Members(g)) {
			t.Errorf("Members(%s) = %+v\nserver has %+v", g, got, s.Members(g))
		}
	}
	// The resubscribes carried the last revision and epoch of each group.
	var resubs []protocol.ClientFrame
	for _, f := range s.Received() {
		if f.Op == protocol.OpSubscribe && f.Rev != 0 {
			resubs = append(resubs, f)
		}
	}
	slices.SortFunc(resubs, func(a, b protocol.ClientFrame) int { return strings.Compare(a.Group, b.Group) })
	if len(resubs) != 2 || resubs[0].Group != "g1" || resubs[0].Rev != all[0].Rev || resubs[0].Epoch != "e1" ||
		resubs[1].Group != "g2" || resubs[1].Rev != 5 || resubs[1].Epoch != "e1" {
		t.Errorf("resubscribes %+v", resubs)
	}
	select {
	case ev := <-c.Events():
		t.Errorf("unexpected event %s %+v", ev.Type, ev)
	default:
	}
}

func TestReconnectFreshSnapshot(t *testing.T) {
	tests := []struct {
		name  string
		reset func(b *fakeserver.Batch)
		epoch string
	}{
		{"new epoch", func(b *fakeserver.Batch) { b.NewEpoch("e2") }, "e2"},
		{"history gone", func(b *fakeserver.Batch) { b.ForgetHistory() }, "e1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := fakeserver.Start(t, fakeserver.Config{})
			s.Change("g1", member("u1", protocol.StatusOnline, ""))
			s.Change("g1", member("u2", protocol.StatusOnline, ""))
			c := dial(t, s, &Options{Reconnect: true})
			ctx := testContext(t)
			nextOf(t, c, EventConnected)
			if _, err := c.Subscribe(ctx, "g1"); err != nil {
				t.Fatal(err)
			}
			nextOf(t, c, EventSnapshot)
			s.Disconnect(0, func(b *fakeserver.Batch) {
				b.Change("g1", protocol.Member{User: "u1", Status: protocol.StatusOffline, Removed: true})
				tt.reset(b)
				b.Change("g1", member("u3", protocol.StatusBusy, ""))
			})
			nextOf(t, c, EventDisconnected)
			nextOf(t, c, EventConnected)
			ev := nextOf(t, c, EventSnapshot)
			if !ev.Fresh || ev.Epoch != tt.epoch || ev.Rev != 4 {
				t.Errorf("snapshot after reconnect: fresh %v epoch %q rev %d", ev.Fresh, ev.Epoch, ev.Rev)
			}
			if got := stripRev(c.Members("g1")); !reflect.DeepEqual(got, s.Members("g1")) {
				t.Errorf("Members = %+v\nserver has %+v", got, s.Members("g1"))
			}
		})
	}
}

func TestCounts(t *testing.T) {
	s := fakeserver.Start(t, fakeserver.Config{})
	s.Change("big", member("u1", protocol.StatusOnline, ""))
	s.Change("big", member("u2", protocol.StatusOffline, ""))
	s.Change("g2", member("u3", protocol.StatusOnline, ""))
	c := dial(t, s, &Options{Reconnect: true})
	ctx := testContext(t)
	nextOf(t, c, EventConnected)

	gc, err := c.SubscribeCounts(ctx, "big")
	if err != nil || gc != (protocol.GroupCount{Group: "big", Online: 1, Total: 2, Rev: 3}) {
		t.Fatalf("SubscribeCounts = %+v, %v", gc, err)
	}
	nextOf(t, c, EventCounts)
	if c.Members("big") != nil {
		t.Error("a counts-only group has members")
	}
	s.Change("big", member("u2", protocol.StatusAway, ""))
	if ev := nextOf(t, c, EventCounts); len(ev.Counts) != 1 || ev.Counts[0].Online != 2 {
		t.Errorf("counts push %+v", ev)
	}
	if got, _ := c.Counts("big"); got.Online != 2 || got.Rev != 4 {
		t.Errorf("Counts = %+v", got)
	}

	counts, err := c.WatchCounts(ctx, []string{"g2"})
	if err != nil || len(counts) != 1 || counts[0].Group != "g2" || counts[0].Online != 1 {
		t.Fatalf("WatchCounts = %+v, %v", counts, err)
	}
	nextOf(t, c, EventCounts)

	// Both survive a reconnect.
	s.Disconnect(0, nil)
	nextOf(t, c, EventDisconnected)
	nextOf(t, c, EventConnected)
	nextOf(t, c, EventCounts)
	nextOf(t, c, EventCounts)
	s.Change("g2", member("u3", protocol.StatusOffline, ""))
	if ev := nextOf(t, c, EventCounts); len(ev.Counts) != 1 || ev.Counts[0] != (protocol.GroupCount{Group: "g2", Total: 1, Rev: 5}) {
		t.Errorf("watched counts push after reconnect %+v", ev)
	}
	if err := c.UnwatchCounts(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestSetStatus(t *testing.T) {
	s := fakeserver.Start(t, fakeserver.Config{Tokens: map[string]string{"t": "alice"}})
	s.Change("g1", member("alice", protocol.StatusOnline, ""))
	c := dial(t, s, &Options{Token: "t"})
	ctx := testContext(t)
	if _, err := c.Subscribe(ctx, "g1"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetStatus(ctx, protocol.StatusBusy, "In a meeting", 90*time.Minute+time.Millisecond); err != nil {
		t.Fatal(err)
	}
	rec := s.Received()
	if f := rec[len(rec)-1]; f.Op != protocol.OpSetStatus || f.Status != protocol.StatusBusy || f.Text != "In a meeting" || f.ExpiresIn != 5401 {
		t.Errorf("sent %+v", f)
	}
	nextOf(t, c, EventConnected)
	nextOf(t, c, EventSnapshot)
	if ev := nextOf(t, c, EventDelta); ev.Changes[0].Status != protocol.StatusBusy || ev.Changes[0].Text != "In a meeting" {
		t.Errorf("own status delta %+v", ev)
	}
}

func TestSubscriptionEnded(t *testing.T) {
	s := fakeserver.Start(t, fakeserver.Config{})
	s.Change("g1", member("u1", protocol.StatusOnline, ""))
	c := dial(t, s, nil)
	if _, err := c.Subscribe(testContext(t), "g1"); err != nil {
		t.Fatal(err)
	}
	nextOf(t, c, EventConnected)
	nextOf(t, c, EventSnapshot)
	s.EndSubscription("g1", protocol.CodeForbidden, "no longer a member")
	ev := nextOf(t, c, EventSubscriptionEnded)
	if e, ok := errors.AsType[*protocol.Error](ev.Err); ev.Group != "g1" || !ok || e.Code != protocol.CodeForbidden {
		t.Errorf("event %+v", ev)
	}
	if c.Groups() != nil {
		t.Errorf("Groups = %v after the end", c.Groups())
	}
}

func TestRefreshTokenUsedOnReconnect(t *testing.T) {
	s := fakeserver.Start(t, fakeserver.Config{Tokens: map[string]string{"old": "alice", "new": "alice", "eve": "eve"}})
	c := dial(t, s, &Options{Token: "old", Reconnect: true})
	ctx := testContext(t)
	if err := c.Refresh(ctx, "eve"); !isCode(err, protocol.CodeUnauthorized) {
		t.Fatalf("Refresh with another user's token: %v", err)
	}
	if err := c.Refresh(ctx, "new"); err != nil {
		t.Fatal(err)
	}
	s.Disconnect(0, nil)
	nextOf(t, c, EventConnected)
	nextOf(t, c, EventDisconnected)
	nextOf(t, c, EventConnected)
	hs := s.Handshakes()
	if len(hs) != 2 || hs[0].Token != "old" || hs[1].Token != "new" {
		t.Errorf("handshake tokens %+v", hs)
	}
}

func TestTokenFunc(t *testing.T) {
	s := fakeserver.Start(t, fakeserver.Config{Tokens: map[string]string{"t1": "alice", "t2": "alice"}})
	var mu sync.Mutex
	tokens := []string{"t1", "t2"}
	c := dial(t, s, &Options{Reconnect: true, TokenFunc: func(context.Context) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		tok := tokens[0]
		tokens = tokens[1:]
		return tok, nil
	}})
	nextOf(t, c, EventConnected)
	// An expired token ends the connection, and a client with a TokenFunc
	// comes back with a new one.
	s.Disconnect(protocol.CloseTokenExpired, nil)
	nextOf(t, c, EventDisconnected)
	nextOf(t, c, EventConnected)
	if hs := s.Handshakes(); len(hs) != 2 || hs[1].Token != "t2" {
		t.Errorf("handshakes %+v", hs)
	}
}

func TestPermanentClose(t *testing.T) {
	for _, code := range []int{protocol.CloseUnauthorized, protocol.CloseTokenExpired, protocol.ClosePolicy} {
		t.Run(protocol.CloseText(code), func(t *testing.T) {
			s := fakeserver.Start(t, fakeserver.Config{})
			c := dial(t, s, &Options{Reconnect: true})
			nextOf(t, c, EventConnected)
			s.Disconnect(code, nil)
			nextOf(t, c, EventDisconnected)
			ev := nextOf(t, c, EventClosed)
			if ev.Err == nil {
				t.Error("EventClosed without Err")
			}
			if _, ok := <-c.Events(); ok {
				t.Error("events channel not closed after EventClosed")
			}
			err := c.Ping(testContext(t))
			if !errors.Is(err, ErrClosed) {
				t.Errorf("Ping after a permanent close: %v", err)
			}
			if c.Reconnects() != 0 || len(s.Handshakes()) != 1 {
				t.Errorf("reconnected after close code %d", code)
			}
		})
	}
}

func TestNoReconnect(t *testing.T) {
	s := fakeserver.Start(t, fakeserver.Config{})
	c := dial(t, s, nil)
	nextOf(t, c, EventConnected)
	s.Disconnect(protocol.CloseGoingAway, nil)
	nextOf(t, c, EventDisconnected)
	nextOf(t, c, EventClosed)
	if err := c.Ping(testContext(t)); !errors.Is(err, ErrClosed) {
		t.Errorf("Ping: %v", err)
	}
}

// TestRequestWaitsForReconnect: a call made while the client is away is
// sent on the next connection.
func TestRequestWaitsForReconnect(t *testing.T) {
	s := fakeserver.Start(t, fakeserver.Config{})
	var mu sync.Mutex
	release := make(chan struct{})
	first := true
	c := dial(t, s, &Options{Reconnect: true, TokenFunc: func(ctx context.Context) (string, error) {
		mu.Lock()
		wasFirst := first
		first = false
		mu.Unlock()
		if !wasFirst {
			select { // hold the reconnect until the test says so
			case <-release:
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
		return "", nil
	}})
	nextOf(t, c, EventConnected)
	s.Disconnect(0, nil)
	nextOf(t, c, EventDisconnected)
	if c.Connected() {
		t.Fatal("Connected while the reconnect is held")
	}
	done := make(chan error, 1)
	go func() { done <- c.Ping(testContext(t)) }()
	close(release)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait):
		t.Fatal("Ping did not complete after the reconnect")
	}
}

func TestEventsOverflow(t *testing.T) {
	s := fakeserver.Start(t, fakeserver.Config{})
	s.Change("g1", member("u0", protocol.StatusOnline, ""))
	c := dial(t, s, &Options{EventBuffer: 2}) // connected + snapshot fill it
	ctx := testContext(t)
	if _, err := c.Subscribe(ctx, "g1"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		s.Change("g1", member(fmt.Sprintf("u%d", i), protocol.StatusOnline, ""))
	}
	// A ping round trip after the changes proves they were all read.
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if got := c.Dropped(); got != 5 {
		t.Errorf("Dropped = %d, want 5", got)
	}
	if got := len(c.Members("g1")); got != 6 {
		t.Errorf("member view has %d members despite dropped events, want 6", got)
	}
}

func TestOnEvent(t *testing.T) {
	s := fakeserver.Start(t, fakeserver.Config{})
	s.Change("g1", member("u1", protocol.StatusOnline, ""))
	var mu sync.Mutex
	var types []EventType
	c := dial(t, s, &Options{OnEvent: func(ev Event) {
		mu.Lock()
		defer mu.Unlock()
		types = append(types, ev.Type)
	}})
	if c.Events() != nil {
		t.Error("Events is not nil with OnEvent")
	}
	if _, err := c.Subscribe(testContext(t), "g1"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	mu.Lock()
	defer mu.Unlock()
	if want := []EventType{EventConnected, EventSnapshot, EventClosed}; !slices.Equal(types, want) {
		t.Errorf("events %v, want %v", types, want)
	}
}

// TestCloseWhileReconnecting: Close ends the reconnect loop; goleak in
// TestMain checks that no goroutine survives.
func TestCloseWhileReconnecting(t *testing.T) {
	s := fakeserver.Start(t, fakeserver.Config{})
	c := dial(t, s, &Options{Reconnect: true})
	nextOf(t, c, EventConnected)
	s.Close() // every reconnect attempt now fails
	nextOf(t, c, EventDisconnected)
	pending := make(chan error, 1)
	go func() { pending <- c.Ping(context.Background()) }()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-pending; !errors.Is(err, ErrClosed) {
		t.Errorf("pending Ping: %v", err)
	}
	if ev := nextOf(t, c, EventClosed); ev.Err != nil {
		t.Errorf("EventClosed after Close has Err %v", ev.Err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestCloseFailsPendingRequests(t *testing.T) {
	s := fakeserver.Start(t, fakeserver.Config{})
	c := dial(t, s, nil)
	s.HoldReplies(2) // the ping below is never answered
	pending := make(chan error, 1)
	go func() { pending <- c.Ping(context.Background()) }()
	if err := s.WaitReceived(testContext(t), 1); err != nil {
		t.Fatal("ping never reached the server")
	}
	c.Close()
	if err := <-pending; !errors.Is(err, ErrClosed) {
		t.Errorf("pending Ping after Close: %v", err)
	}
}

// TestPushedSnapshotReplacesGroup: the server pushes a fresh snapshot when
// a group's revisions started over (its store was lost); the client's view
// becomes that snapshot and the deltas after it apply.
func TestPushedSnapshotReplacesGroup(t *testing.T) {
	s := fakeserver.Start(t, fakeserver.Config{})
	s.Change("g1", member("u1", protocol.StatusOnline, ""))
	s.Change("g1", member("u2", protocol.StatusOnline, ""))
	c := dial(t, s, nil)
	ctx := testContext(t)
	nextOf(t, c, EventConnected)
	if _, err := c.Subscribe(ctx, "g1"); err != nil {
		t.Fatal(err)
	}
	nextOf(t, c, EventSnapshot)
	s.Change("g1", member("u2", protocol.StatusOffline, ""))
	nextOf(t, c, EventDelta)
	s.PushSnapshot("g1", "e2")
	ev := nextOf(t, c, EventSnapshot)
	if !ev.Fresh || ev.Epoch != "e2" || ev.Group != "g1" {
		t.Fatalf("pushed snapshot event %+v", ev)
	}
	if got := stripRev(c.Members("g1")); !reflect.DeepEqual(got, s.Members("g1")) {
		t.Fatalf("Members after the pushed snapshot = %+v, server has %+v", got, s.Members("g1"))
	}
	s.Change("g1", member("u3", protocol.StatusBusy, ""))
	if ev := nextOf(t, c, EventDelta); len(ev.Changes) != 1 || ev.Changes[0].User != "u3" {
		t.Fatalf("delta after the pushed snapshot %+v", ev)
	}
}

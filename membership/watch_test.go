package membership_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/presenced/presenced/internal/jskv"
	"github.com/presenced/presenced/internal/natstest"
	"github.com/presenced/presenced/membership"
)

// TestWatchSurvivesServerDeath kills the server that holds the watch of
// the membership bucket (where the watch's consumer lives) in a
// three-server cluster. Writes go on through a new leader; the
// index must apply each one soon after it is acknowledged, instead of
// waiting behind a watch that went silent with its server.
func TestWatchSurvivesServerDeath(t *testing.T) {
	if testing.Short() {
		t.Skip("a cluster of three servers")
	}
	srvs := natstest.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin, err := jetstream.New(natstest.Connect(t, srvs[0]))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jskv.CreateBucket(ctx, admin, jetstream.KeyValueConfig{
		Bucket: membership.DefaultBucket, History: 1, Storage: jetstream.FileStorage, Replicas: 3,
	}); err != nil {
		t.Fatal(err)
	}
	// The watch's consumer lives on one server; the store talks to
	// another, which stays up. Placement is the cluster's choice: open
	// again until they differ.
	var st *membership.Store
	var victim string
	for attempt := 0; ; attempt++ {
		conn := srvs[attempt%len(srvs)]
		js, err := jetstream.New(natstest.Connect(t, conn))
		if err != nil {
			t.Fatal(err)
		}
		st, err = membership.Open(ctx, membership.Config{JetStream: js, Replicas: 3, Logger: zaptest.NewLogger(t),
			WatchCheck: 500 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if victim = consumerServer(ctx, t, admin); victim != conn.Name() {
			t.Logf("the watch's consumer is on %s, the store talks to %s", victim, conn.Name())
			break
		}
		st.Close()
		if attempt == 10 {
			t.Fatal("the watch's consumer is always on the store's own server")
		}
	}
	t.Cleanup(st.Close)
	if _, err := st.CreateUser(ctx, membership.User{ID: "before", Username: "before", Active: true}); err != nil {
		t.Fatal(err)
	}
	for _, s := range srvs {
		if s.Name() == victim {
			s.Shutdown()
			s.WaitForShutdown()
		}
	}
	alive := srvs[0]
	if alive.Name() == victim {
		alive = srvs[1]
	}
	js, err := jetstream.New(natstest.Connect(t, alive))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		id := fmt.Sprintf("after%d", i)
		// The write itself waits for a new leader (while the stream has
		// none, a publish gets "no response from stream" at once and is
		// sent again); what follows its acknowledgement must not.
		b := []byte(fmt.Sprintf(`{"id":%q,"username":%q,"active":true,"type":"user"}`, id, id))
		if _, err := jskv.Retry(ctx, func(ctx context.Context) (*jetstream.PubAck, error) {
			return js.PublishMsg(ctx, &nats.Msg{Subject: "$KV." + membership.DefaultBucket + ".users." + id, Data: b})
		}); err != nil {
			t.Fatal(err)
		}
		acked := time.Now()
		for {
			if _, ok := st.Index().User(id); ok {
				break
			}
			if time.Since(acked) > 5*time.Second {
				t.Fatalf("user %s acknowledged %v ago and still not in the index (watch resumed %d times)",
					id, time.Since(acked).Round(time.Millisecond), st.Resumes())
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("%s applied %v after its acknowledgement", id, time.Since(acked).Round(time.Millisecond))
	}
}

// consumerServer names the server that holds the (one) consumer of the
// membership bucket's stream: the store's watch.
func consumerServer(ctx context.Context, t *testing.T, js jetstream.JetStream) string {
	t.Helper()
	st, err := js.Stream(ctx, "KV_"+membership.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	for ci := range st.ListConsumers(ctx).Info() {
		if ci.Cluster != nil && ci.Cluster.Leader != "" {
			return ci.Cluster.Leader
		}
	}
	t.Fatal("no consumer with a leader")
	return ""
}

// TestConcurrentCreatesInACluster creates users from two stores on two
// servers of a cluster at once: every create must succeed. Their numeric
// aliases are reserved with a compare-and-set, whose conflict a replicated
// stream reports with another error code than a single server; it was
// taken for a failure (500) instead of a conflict to try again.
func TestConcurrentCreatesInACluster(t *testing.T) {
	if testing.Short() {
		t.Skip("a cluster of three servers")
	}
	srvs := natstest.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	open := func(s *server.Server) *membership.Store {
		js, err := jetstream.New(natstest.Connect(t, s))
		if err != nil {
			t.Fatal(err)
		}
		st, err := membership.Open(ctx, membership.Config{JetStream: js, Replicas: 3, Logger: zaptest.NewLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(st.Close)
		return st
	}
	stores := []*membership.Store{open(srvs[0]), open(srvs[1])}
	errs := make(chan error, 40)
	for i, st := range stores {
		go func() {
			for j := range 20 {
				id := fmt.Sprintf("u%d-%02d", i, j)
				_, err := st.CreateUser(ctx, membership.User{ID: id, Username: id, Active: true})
				errs <- err
			}
		}()
	}
	for range 40 {
		if err := <-errs; err != nil {
			t.Fatalf("a concurrent create failed: %v", err)
		}
	}
}

// TestCreatesContendInACluster creates users through the stores of all
// three servers of a cluster, 32 at a time on each, as seeding clients or
// imports do: every create must succeed, with a numeric alias of its own.
// Each create reserves its alias with a compare-and-set on one key, and
// one try of each round wins: a fixed number of tries, or a value read
// from a replica that has not applied the last reservation yet, made the
// others fail with a conflict their caller never caused.
func TestCreatesContendInACluster(t *testing.T) {
	if testing.Short() {
		t.Skip("a cluster of three servers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stores := clusterStores(t, ctx)
	const perStore, workers = 160, 32
	type created struct {
		u   membership.User
		err error
	}
	results := make(chan created, len(stores)*perStore)
	for i, st := range stores {
		ids := make(chan string, perStore)
		for j := range perStore {
			ids <- fmt.Sprintf("u%d-%03d", i, j)
		}
		close(ids)
		for range workers {
			go func() {
				for id := range ids {
					u, err := st.CreateUser(ctx, membership.User{ID: id, Username: id, Active: true})
					results <- created{u, err}
				}
			}()
		}
	}
	failed := 0
	var first error
	seqs := map[int64]string{}
	for range len(stores) * perStore {
		r := <-results
		if r.err != nil {
			failed++
			if first == nil {
				first = r.err
			}
			continue
		}
		if other, dup := seqs[r.u.Seq]; dup {
			t.Errorf("users %s and %s share the numeric alias %d", other, r.u.ID, r.u.Seq)
		}
		seqs[r.u.Seq] = r.u.ID
	}
	if failed > 0 {
		t.Fatalf("%d of %d concurrent creates failed; the first: %v", failed, len(stores)*perStore, first)
	}
}

// TestUpdatesContendInACluster updates one user and one group from the
// stores of all three servers of a cluster, eight updates at a time on
// each: every update must succeed, and none may be lost. An update is a
// compare-and-set on the record as this server's index has it; it lost
// to a write the index had not applied yet at each of its ten tries, in
// a few milliseconds, and answered a conflict to its caller.
func TestUpdatesContendInACluster(t *testing.T) {
	if testing.Short() {
		t.Skip("a cluster of three servers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stores := clusterStores(t, ctx)
	// Each update counts up the name: a lost update shows as a count short.
	count := func(name *string) error {
		n, err := strconv.Atoi(*name)
		*name = strconv.Itoa(n + 1)
		return err
	}
	if _, err := stores[0].CreateUser(ctx, membership.User{ID: "u", Username: "u", Name: "0", Active: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := stores[0].CreateGroup(ctx, membership.Group{ID: "g", Name: "0"}); err != nil {
		t.Fatal(err)
	}
	const perStore, workers = 48, 8
	errs := make(chan error, 2*len(stores)*perStore)
	for _, st := range stores {
		for range workers {
			go func() {
				for range perStore / workers {
					_, err := st.UpdateUser(ctx, "u", func(u *membership.User) error { return count(&u.Name) })
					errs <- err
					_, err = st.UpdateGroup(ctx, "g", func(g *membership.Group) error { return count(&g.Name) })
					errs <- err
				}
			}()
		}
	}
	failed := 0
	var first error
	for range 2 * len(stores) * perStore {
		if err := <-errs; err != nil {
			failed++
			if first == nil {
				first = err
			}
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d concurrent updates failed; the first: %v", failed, 2*len(stores)*perStore, first)
	}
	want := strconv.Itoa(len(stores) * perStore)
	for _, st := range stores {
		// Each store's last update waited for its own index; the others'
		// may still be on their way to it.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			u, _ := st.Index().User("u")
			g, _ := st.Index().Group("g")
			if u.Name == want && g.Name == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after %s updates each, the user counts %s and the group %s", want, u.Name, g.Name)
			}
		}
	}
}

// clusterStores opens a store on each of the three servers of a new
// cluster, the bucket replicated on all three.
func clusterStores(t *testing.T, ctx context.Context) []*membership.Store {
	t.Helper()
	return storesOn(t, ctx, natstest.StartCluster(t, 3))
}

// storesOn opens a store on each of servers, the bucket replicated on all.
func storesOn(t *testing.T, ctx context.Context, servers []*server.Server) []*membership.Store {
	t.Helper()
	var stores []*membership.Store
	for _, s := range servers {
		js, err := jetstream.New(natstest.Connect(t, s))
		if err != nil {
			t.Fatal(err)
		}
		st, err := membership.Open(ctx, membership.Config{JetStream: js, Replicas: len(servers), Logger: zaptest.NewLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(st.Close)
		stores = append(stores, st)
	}
	return stores
}

// TestMembershipPutsAgreeAcrossNodes puts the same memberships through
// all three nodes at once: every caller must be told the seq that is
// stored, the one the first write gave. Each put read its own node's
// index, found no membership, reserved a seq of its own and wrote it
// without a compare-and-set: three answers, three seqs, one stored.
func TestMembershipPutsAgreeAcrossNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("a cluster of three servers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stores := clusterStores(t, ctx)
	if _, err := stores[0].CreateGroup(ctx, membership.Group{ID: "g", Name: "g"}); err != nil {
		t.Fatal(err)
	}
	const users = 40
	for i := range users {
		id := fmt.Sprintf("u%02d", i)
		if _, err := stores[i%3].CreateUser(ctx, membership.User{ID: id, Username: id, Active: true}); err != nil {
			t.Fatal(err)
		}
	}
	type answer struct {
		user string
		seq  int64
		err  error
	}
	answers := make(chan answer, 3*users)
	for _, st := range stores {
		go func() {
			for i := range users {
				id := fmt.Sprintf("u%02d", i)
				m, err := st.PutMember(ctx, membership.Member{GroupID: "g", UserID: id})
				answers <- answer{id, m.Seq, err}
			}
		}()
	}
	told := map[string]map[int64]bool{}
	for range 3 * users {
		a := <-answers
		if a.err != nil {
			t.Fatalf("put member %s: %v", a.user, a.err)
		}
		if told[a.user] == nil {
			told[a.user] = map[int64]bool{}
		}
		told[a.user][a.seq] = true
	}
	differ := 0
	for i := range users {
		id := fmt.Sprintf("u%02d", i)
		m, _ := stores[0].Index().Member("g", id)
		if len(told[id]) != 1 || !told[id][m.Seq] {
			differ++
			if differ <= 3 {
				t.Errorf("member %s: callers told seqs %v, stored %d", id, told[id], m.Seq)
			}
		}
	}
	if differ > 0 {
		t.Fatalf("%d of %d memberships answered seqs that are not the one stored", differ, users)
	}
}

// TestMembershipDiesWithItsUser deletes users through one node while
// another puts them in a group: once both are done, no membership may be
// left whose user is gone. The put checked the user in its node's index
// before the deletion reached it and landed after the deletion's own
// sweep of memberships: the membership outlived its user, and a later
// user with the same id inherited it.
func TestMembershipDiesWithItsUser(t *testing.T) {
	if testing.Short() {
		t.Skip("a cluster of three servers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stores := clusterStores(t, ctx)
	if _, err := stores[0].CreateGroup(ctx, membership.Group{ID: "g", Name: "g"}); err != nil {
		t.Fatal(err)
	}
	const users = 60
	for i := range users {
		id := fmt.Sprintf("u%02d", i)
		if _, err := stores[0].CreateUser(ctx, membership.User{ID: id, Username: id, Active: true}); err != nil {
			t.Fatal(err)
		}
	}
	// Every store has every user before the race begins.
	for _, st := range stores {
		for deadline := time.Now().Add(10 * time.Second); len(st.Index().Users()) < users; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("users not applied everywhere")
			}
		}
	}
	done := make(chan struct{}, 2*users)
	for i := range users {
		id := fmt.Sprintf("u%02d", i)
		go func() {
			_ = stores[1].DeleteUser(ctx, id)
			done <- struct{}{}
		}()
		go func() {
			_, _ = stores[2].PutMember(ctx, membership.Member{GroupID: "g", UserID: id})
			done <- struct{}{}
		}()
	}
	for range 2 * users {
		<-done
	}
	for _, st := range stores {
		var orphans []string
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			orphans = orphans[:0]
			for _, m := range st.Index().Members("g") {
				if _, ok := st.Index().User(m.UserID); !ok {
					orphans = append(orphans, m.UserID)
				}
			}
			if len(orphans) == 0 || time.Now().After(deadline) {
				break
			}
		}
		if len(orphans) > 0 {
			t.Fatalf("5s after the race, %d memberships of deleted users are left: %v", len(orphans), orphans)
		}
	}
	// A new user with a deleted one's id starts with no group.
	if _, err := stores[0].CreateUser(ctx, membership.User{ID: "u00", Username: "u00-again", Active: true}); err != nil {
		t.Fatal(err)
	}
	if gs := stores[0].Index().GroupsOf("u00"); len(gs) != 0 {
		t.Fatalf("a new u00 inherits %+v", gs)
	}
}

// TestPutsOfANewUserAgreeAcrossNodes puts the same new users and groups
// through all three nodes at once: every caller must be told the seq that
// is stored. A put of a record its node's index did not have yet was a
// plain write that replaced whatever another node had created meanwhile,
// with a seq of its own: an acknowledged seq changed.
func TestPutsOfANewUserAgreeAcrossNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("a cluster of three servers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stores := clusterStores(t, ctx)
	const n = 30
	type answer struct {
		key string
		seq int64
		err error
	}
	answers := make(chan answer, 2*3*n)
	for _, st := range stores {
		go func() {
			for i := range n {
				id := fmt.Sprintf("x%02d", i)
				u, err := st.PutUser(ctx, membership.User{ID: id, Username: id, Active: true})
				answers <- answer{"users." + id, u.Seq, err}
				g, err := st.PutGroup(ctx, membership.Group{ID: id, Name: id})
				answers <- answer{"groups." + id, g.Seq, err}
			}
		}()
	}
	told := map[string]map[int64]bool{}
	for range 2 * 3 * n {
		a := <-answers
		if a.err != nil {
			t.Fatalf("put %s: %v", a.key, a.err)
		}
		if told[a.key] == nil {
			told[a.key] = map[int64]bool{}
		}
		told[a.key][a.seq] = true
	}
	differ := 0
	for i := range n {
		id := fmt.Sprintf("x%02d", i)
		u, _ := stores[0].Index().User(id)
		g, _ := stores[0].Index().Group(id)
		for key, stored := range map[string]int64{"users." + id: u.Seq, "groups." + id: g.Seq} {
			if len(told[key]) != 1 || !told[key][stored] {
				differ++
				if differ <= 3 {
					t.Errorf("%s: callers told seqs %v, stored %d", key, told[key], stored)
				}
			}
		}
	}
	if differ > 0 {
		t.Fatalf("%d of %d records answered seqs that are not the one stored", differ, 2*n)
	}
}

// TestWritesThroughAnotherNodeFindWhatWasJustCreated creates a user and a
// group through one node and at once puts the membership, renames and
// deletes through another, as clients behind a load balancer do: none
// may answer not found for what was acknowledged. The other node's index
// could still lack it for a few milliseconds.
func TestWritesThroughAnotherNodeFindWhatWasJustCreated(t *testing.T) {
	if testing.Short() {
		t.Skip("a cluster of three servers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stores := clusterStores(t, ctx)
	failed := 0
	for i := range 100 {
		id := fmt.Sprintf("n%03d", i)
		if _, err := stores[0].CreateUser(ctx, membership.User{ID: id, Username: id, Active: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := stores[0].CreateGroup(ctx, membership.Group{ID: id, Name: id}); err != nil {
			t.Fatal(err)
		}
		other := stores[1+i%2]
		if _, err := other.PutMember(ctx, membership.Member{GroupID: id, UserID: id}); err != nil {
			failed++
			t.Logf("put member %s: %v", id, err)
			continue
		}
		if _, err := other.UpdateGroup(ctx, id, func(g *membership.Group) error { g.Name = "renamed"; return nil }); err != nil {
			failed++
			t.Logf("update group %s: %v", id, err)
		}
		if err := stores[0].DeleteMember(ctx, id, id); err != nil {
			failed++
			t.Logf("delete member %s: %v", id, err)
		}
		if err := other.DeleteUser(ctx, id); err != nil {
			failed++
			t.Logf("delete user %s: %v", id, err)
		}
	}
	if failed > 0 {
		t.Fatalf("%d writes through another node did not find what was acknowledged", failed)
	}
}

// TestUsernamesStayUniqueAcrossNodes creates users through two nodes at
// once, each name asked for by two ids, and renames others onto names
// being created: one user per name must win, the others fail with "is
// taken". The check read the node's own index, which the other node's
// create had not reached: both were stored (195 of 200 from outside).
func TestUsernamesStayUniqueAcrossNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("a cluster of three servers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stores := clusterStores(t, ctx)
	const names = 40
	done := make(chan error, 2*names)
	for i := range names {
		name := fmt.Sprintf("name%02d", i)
		for k, st := range stores[:2] {
			go func() {
				_, err := st.CreateUser(ctx, membership.User{ID: fmt.Sprintf("u%02d-%d", i, k), Username: name, Active: true})
				done <- err
			}()
		}
	}
	for range 2 * names {
		if err := <-done; err != nil {
			var ve *membership.ValidationError
			if !errors.As(err, &ve) || ve.Field != "username" {
				t.Fatalf("a create that lost its name failed with %v, want a username validation error", err)
			}
		}
	}
	// A rename onto a taken name fails; onto a free one, it frees the old.
	if _, err := stores[2].UpdateUser(ctx, "u00-0", func(u *membership.User) error { u.Username = "name01"; return nil }); err == nil {
		if _, err2 := stores[2].UpdateUser(ctx, "u00-1", func(u *membership.User) error { u.Username = "name01"; return nil }); err2 == nil {
			t.Log("both renames succeeded")
		}
	}
	byName := map[string][]string{}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		clear(byName)
		for _, u := range stores[2].Index().Users() {
			byName[u.Username] = append(byName[u.Username], u.ID)
		}
		if len(byName) >= names || time.Now().After(deadline) {
			break
		}
	}
	dups := 0
	for name, ids := range byName {
		if len(ids) > 1 {
			dups++
			if dups <= 3 {
				t.Errorf("username %s held by %v", name, ids)
			}
		}
	}
	if dups > 0 {
		t.Fatalf("%d usernames held by more than one user", dups)
	}
}

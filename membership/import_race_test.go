package membership_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/presenced/presenced/internal/natstest"
	"github.com/presenced/presenced/membership"
)

// TestImportKeepsWhatOthersCreate imports users while another store (another
// node) creates the same ids. A create that was acknowledged keeps its seq
// and its fields: the import's line for that id either updates it, keeping
// its seq, or fails alone with a message that says why. Imports stored
// plain puts, so a user created after the import read its line was
// overwritten with another seq.
func TestImportKeepsWhatOthersCreate(t *testing.T) {
	srv := natstest.Start(t)
	a, b := openStore(t, srv), openStore(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n = 3000
	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, `{"kind":"user","id":"u%d","username":"imp%d","name":"imported"}`+"\n", i, i)
	}

	var mu sync.Mutex
	created := map[string]membership.User{} // acknowledged creates through b
	var wg sync.WaitGroup
	const workers = 8
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				u, err := b.CreateUser(ctx, membership.User{ID: fmt.Sprintf("u%d", i), Username: fmt.Sprintf("cre%d", i), Name: "created", Active: true})
				switch {
				case err == nil:
					mu.Lock()
					created[u.ID] = u
					mu.Unlock()
				case errors.Is(err, membership.ErrExists):
				default:
					t.Errorf("create u%d: %v", i, err)
					return
				}
			}
		})
	}
	rep, err := a.Import(ctx, strings.NewReader(in.String()), nil)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if rep.Lines != n || rep.Created+rep.Updated+rep.Unchanged+rep.Failed != n {
		t.Fatalf("report does not add up: %+v", rep)
	}
	if len(created) == 0 || rep.Created == 0 {
		t.Fatalf("no race: %d created through the other store, report %+v", len(created), rep)
	}
	for _, e := range rep.Errors {
		if !strings.Contains(e.Message, "while the import ran") {
			t.Fatalf("line %d failed: %s", e.Line, e.Message)
		}
	}
	last := max(a.Index().Rev(), b.Index().Rev())
	for _, st := range []*membership.Store{a, b} {
		for deadline := time.Now().Add(10 * time.Second); st.Index().Rev() < last; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the stores did not catch up")
			}
		}
	}
	changed := 0
	var first string
	for id, c := range created {
		got, ok := a.Index().User(id)
		if !ok || got.Seq != c.Seq || got.CreatedAt != c.CreatedAt {
			changed++
			if first == "" {
				first = fmt.Sprintf("%s created with seq %d, stored %+v", id, c.Seq, got)
			}
		}
	}
	if changed > 0 {
		t.Fatalf("%d of %d acknowledged creates were overwritten by the import (%+v); first: %s", changed, len(created), rep, first)
	}
	seqs := map[int64]string{}
	for _, u := range a.Index().Users() {
		if other, ok := seqs[u.Seq]; ok {
			t.Fatalf("seq %d held by %s and %s", u.Seq, other, u.ID)
		}
		seqs[u.Seq] = u.ID
	}
	if len(seqs) != n {
		t.Fatalf("%d users stored, want %d", len(seqs), n)
	}
	t.Logf("%d created through the other store; import %+v", len(created), ImportCounts(rep))
}

// ImportCounts is a report without its error list, for logs.
func ImportCounts(r membership.ImportReport) membership.ImportReport {
	r.Errors = nil
	return r
}

// TestImportRewritesAndRecreates covers the keys an import writes that are
// not plain creations: a user written twice in one batch, and users deleted
// since an earlier import created them.
func TestImportRewritesAndRecreates(t *testing.T) {
	ctx := t.Context()
	st := openStore(t, natstest.Start(t))
	in := `{"kind":"user","id":"u1","username":"one"}
{"kind":"user","id":"u1","username":"one","name":"One"}
{"kind":"user","id":"u2","username":"two","seq":40}
{"kind":"group","id":"g","name":"G"}
{"kind":"member","groupId":"g","userId":"u1"}
{"kind":"member","groupId":"g","userId":"u1","role":"owner"}
`
	rep, err := st.Import(ctx, strings.NewReader(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Created != 4 || rep.Updated != 2 || rep.Failed != 0 {
		t.Fatalf("first import: %+v", rep)
	}
	u1, _ := st.Index().User("u1")
	if u1.Name != "One" || u1.Seq == 0 {
		t.Fatalf("u1: %+v", u1)
	}
	if m, _ := st.Index().Member("g", "u1"); m.Role != membership.RoleOwner || m.Seq == 0 {
		t.Fatalf("membership: %+v", m)
	}
	for _, id := range []string{"u1", "u2"} {
		if err := st.DeleteUser(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.DeleteGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	rep, err = st.Import(ctx, strings.NewReader(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Created != 4 || rep.Updated != 2 || rep.Failed != 0 {
		t.Fatalf("import after the deletions: %+v", rep)
	}
	if u2, ok := st.Index().User("u2"); !ok || u2.Seq != 40 {
		t.Fatalf("u2 after the deletions: %+v", u2)
	}
	if m, ok := st.Index().Member("g", "u1"); !ok || m.Role != membership.RoleOwner {
		t.Fatalf("membership after the deletions: %+v", m)
	}
}

// pausedReader gives its input in one Read, then tells asked and waits for
// go on before it reports the end: the importer has read and checked
// every line by then, and not yet stored them.
type pausedReader struct {
	input        []byte
	asked, goOn  chan struct{}
	gave, waited bool
}

// importMeanwhile imports input into st and runs meanwhile after every
// line is read and checked and before any is stored.
func importMeanwhile(t *testing.T, st *membership.Store, input string, meanwhile func()) membership.ImportReport {
	t.Helper()
	in := &pausedReader{input: []byte(input), asked: make(chan struct{}), goOn: make(chan struct{})}
	var rep membership.ImportReport
	done := make(chan error, 1)
	go func() {
		var err error
		rep, err = st.Import(t.Context(), in, nil)
		done <- err
	}()
	<-in.asked
	meanwhile()
	close(in.goOn)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return rep
}

func (r *pausedReader) Read(p []byte) (int, error) {
	if !r.gave {
		r.gave = true
		return copy(p, r.input), nil
	}
	if !r.waited {
		r.waited = true
		close(r.asked)
		<-r.goOn
	}
	return 0, io.EOF
}

// TestImportSeqTakenMeanwhile: a line gives a new user seq 2, and another
// request creates a user that the sequence numbers 2 after the import read
// the line and before it stored it. The line fails, and so does the line
// that makes that user a member; before, both users were stored with seq 2.
func TestImportSeqTakenMeanwhile(t *testing.T) {
	ctx := t.Context()
	st := openStore(t, natstest.Start(t))
	if _, err := st.CreateUser(ctx, membership.User{ID: "first", Username: "first", Active: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateGroup(ctx, membership.Group{ID: "g", Name: "G"}); err != nil {
		t.Fatal(err)
	}
	rep := importMeanwhile(t, st, `{"kind":"user","id":"imp","username":"imp","seq":2}
{"kind":"member","groupId":"g","userId":"imp"}
{"kind":"user","id":"fine","username":"fine","seq":7}
`, func() {
		other, err := st.CreateUser(ctx, membership.User{ID: "other", Username: "other", Active: true})
		if err != nil || other.Seq != 2 {
			t.Fatalf("the other user: %+v %v, want seq 2", other, err)
		}
	})
	if rep.Created != 1 || rep.Failed != 2 || len(rep.Errors) != 2 || rep.Errors[0].Line != 1 || rep.Errors[1].Line != 2 {
		t.Fatalf("report: %+v", rep)
	}
	if u, ok := st.Index().UserBySeq(2); !ok || u.ID != "other" {
		t.Fatalf("seq 2 is %+v", u)
	}
	if u, ok := st.Index().User("imp"); ok {
		t.Fatalf("imp stored: %+v", u)
	}
	if _, ok := st.Index().Member("g", "imp"); ok {
		t.Fatal("imp made a member")
	}
	if u, ok := st.Index().User("fine"); !ok || u.Seq != 7 {
		t.Fatalf("fine: %+v", u)
	}
	t.Logf("%+v", rep.Errors)
}

// TestImportClaimsUsernames: an imported user's username is claimed as a
// created one's is, so that a user created elsewhere with the same name
// meanwhile makes the line fail instead of both users holding the name;
// an import that renames a user gives the old name back. Imports wrote no
// claim before.
func TestImportClaimsUsernames(t *testing.T) {
	ctx := t.Context()
	st := openStore(t, natstest.Start(t))
	claim := func(name string) (string, bool) {
		e, err := st.KV().Get(ctx, "names."+hex.EncodeToString([]byte(name)))
		if err != nil {
			return "", false
		}
		return string(e.Value()), true
	}
	createMeanwhile := func(id, username string) func() {
		return func() {
			if _, err := st.CreateUser(ctx, membership.User{ID: id, Username: username, Active: true}); err != nil {
				t.Fatal(err)
			}
		}
	}
	rep := importMeanwhile(t, st, `{"kind":"user","id":"imp","username":"dup"}
{"kind":"user","id":"alice","username":"alice"}
`, createMeanwhile("other", "dup"))
	if rep.Created != 1 || rep.Failed != 1 || rep.Errors[0].Line != 1 || !strings.Contains(rep.Errors[0].Message, `"dup" is taken`) {
		t.Fatalf("report: %+v", rep)
	}
	if _, ok := st.Index().User("imp"); ok {
		t.Fatal("imp stored with a name another user holds")
	}
	if holder, ok := claim("alice"); !ok || holder != `"alice"` {
		t.Fatalf("the claim of alice: %q %v", holder, ok)
	}
	rep, err := st.Import(ctx, strings.NewReader(`{"kind":"user","id":"alice","username":"alice2"}`), nil)
	if err != nil || rep.Updated != 1 {
		t.Fatalf("rename: %+v %v", rep, err)
	}
	if holder, ok := claim("alice2"); !ok || holder != `"alice"` {
		t.Fatalf("the claim of alice2: %q %v", holder, ok)
	}
	if _, ok := claim("alice"); ok {
		t.Fatal("the old name is still claimed")
	}
	// The name given back is free for another user, created anywhere.
	if _, err := st.CreateUser(ctx, membership.User{ID: "newalice", Username: "alice", Active: true}); err != nil {
		t.Fatal(err)
	}
	// A rename to a name taken meanwhile fails alone: the user exists, and
	// a line that makes them a member still stands.
	if _, err := st.CreateGroup(ctx, membership.Group{ID: "g", Name: "G"}); err != nil {
		t.Fatal(err)
	}
	rep = importMeanwhile(t, st, `{"kind":"user","id":"alice","username":"race"}
{"kind":"member","groupId":"g","userId":"alice"}
`, createMeanwhile("racer", "race"))
	if rep.Created != 1 || rep.Failed != 1 || rep.Errors[0].Line != 1 {
		t.Fatalf("rename to a taken name: %+v", rep)
	}
	if u, _ := st.Index().User("alice"); u.Username != "alice2" {
		t.Fatalf("alice renamed to %q", u.Username)
	}
	if _, ok := st.Index().Member("g", "alice"); !ok {
		t.Fatal("the membership of alice was not stored")
	}
	if holder, ok := claim("alice2"); !ok || holder != `"alice"` {
		t.Fatalf("the claim of alice2 after the failed rename: %q %v", holder, ok)
	}
}

// TestImportAgainThroughAnotherNode: records another node wrote before an
// import began are in the view its lines are checked against, although
// this node's index may not have applied them yet. Here they are written
// straight to the bucket, as another node's import does, and the same
// file imported at once: every line is unchanged. Lines whose record the
// index had not applied failed as "created by another request".
func TestImportAgainThroughAnotherNode(t *testing.T) {
	srv := natstest.Start(t)
	st := openStore(t, srv)
	ctx := t.Context()
	js, err := jetstream.New(natstest.Connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		var in strings.Builder
		var futures []jetstream.PubAckFuture
		now := time.Now().UTC()
		for i := range 4000 {
			u := membership.User{ID: fmt.Sprintf("u%d-%d", round, i), Username: fmt.Sprintf("n%d-%d", round, i),
				Type: membership.UserTypeUser, Active: true, Seq: int64(round*4000 + i + 1), CreatedAt: now, UpdatedAt: now}
			fmt.Fprintf(&in, `{"kind":"user","id":%q,"username":%q}`+"\n", u.ID, u.Username)
			b, _ := json.Marshal(u)
			f, err := js.PublishAsync("$KV."+membership.DefaultBucket+".users."+u.ID, b)
			if err != nil {
				t.Fatal(err)
			}
			futures = append(futures, f)
		}
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				t.Fatal(err)
			}
		}
		rep, err := st.Import(ctx, strings.NewReader(in.String()), nil)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Unchanged != 4000 {
			t.Fatalf("round %d: %+v; first error %+v", round, ImportCounts(rep), rep.Errors[:min(1, len(rep.Errors))])
		}
	}
}

// TestImportRenameFreesTheNameForLaterLines: lines are applied in order, so
// a name that an earlier line renames a user away from is free for a
// later line of the same file.
func TestImportRenameFreesTheNameForLaterLines(t *testing.T) {
	ctx := t.Context()
	st := openStore(t, natstest.Start(t))
	in := `{"kind":"user","id":"a","username":"alpha"}
{"kind":"user","id":"b","username":"beta"}
`
	if rep, err := st.Import(ctx, strings.NewReader(in), nil); err != nil || rep.Created != 2 {
		t.Fatalf("%+v %v", rep, err)
	}
	// A swap through a name neither holds.
	swap := `{"kind":"user","id":"a","username":"tmp"}
{"kind":"user","id":"b","username":"alpha"}
{"kind":"user","id":"a","username":"beta"}
`
	rep, err := st.Import(ctx, strings.NewReader(swap), nil)
	if err != nil || rep.Updated != 3 || rep.Failed != 0 {
		t.Fatalf("swap: %+v %v", rep, err)
	}
	a, _ := st.Index().User("a")
	b, _ := st.Index().User("b")
	if a.Username != "beta" || b.Username != "alpha" {
		t.Fatalf("after the swap: a %q, b %q", a.Username, b.Username)
	}
	if _, err := st.CreateUser(ctx, membership.User{ID: "c", Username: "tmp", Active: true}); err != nil {
		t.Fatalf("the name the swap went through is still held: %v", err)
	}
}

// TestImportSurvivesTheLossOfTheStreamLeader: the server leading the
// bucket's stream is cut off, as by a kill -9, between two batches of an
// import through another node. The import waits out the election and
// completes. A write sent while the stream had no leader got no answer,
// and the import stopped when its batch's 30 s ran out.
func TestImportSurvivesTheLossOfTheStreamLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("a cluster of three servers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	servers, cut := natstest.StartCutCluster(t, 3)
	stores := storesOn(t, ctx, servers)
	leader := natstest.StreamLeader(t, servers, "KV_"+membership.DefaultBucket)
	const n = 6000
	var in strings.Builder
	fmt.Fprintf(&in, `{"kind":"group","id":"g","name":"G"}`+"\n")
	for i := range n {
		fmt.Fprintf(&in, `{"kind":"user","id":"u%d","username":"n%d","seq":%d}`+"\n", i, i, i+10)
		fmt.Fprintf(&in, `{"kind":"member","groupId":"g","userId":"u%d"}`+"\n", i)
	}
	batches := 0
	start := time.Now()
	rep, err := stores[(leader+1)%3].Import(ctx, strings.NewReader(in.String()), func(membership.ImportReport) {
		if batches++; batches == 1 {
			cut(leader)
		}
	})
	if err != nil {
		t.Fatalf("after %s: %v", time.Since(start).Round(time.Millisecond), err)
	}
	if rep.Created != 2*n+1 || rep.Failed != 0 {
		t.Fatalf("report: %+v", ImportCounts(rep))
	}
	t.Logf("imported in %s, the leader lost after the first batch", time.Since(start).Round(time.Millisecond))
}

package membership_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/presenced/presenced/internal/natstest"
	"github.com/presenced/presenced/membership"
)

// TestExportImport exports a store, imports the export into an empty store
// and exports that: the same lines, numeric aliases included.
func TestExportImport(t *testing.T) {
	ctx := context.Background()
	a := openStore(t, natstest.Start(t))
	in := strings.Join([]string{
		`{"kind":"role","id":"sales","name":"Sales","scope":"Users"}`,
		`{"kind":"role","id":"oncall","name":"On call","scope":"Subscriptions","description":"pages"}`,
		`{"kind":"user","id":"u1","username":"one","name":"One","utcOffset":-3.5,"roles":["sales"]}`,
		`{"kind":"user","id":"u2","username":"two","type":"bot","active":false}`,
		`{"kind":"user","id":"u3","username":"three","avatarUrl":"https://example.com/3.png"}`,
		`{"kind":"group","id":"g1","name":"G1","type":"public"}`,
		`{"kind":"group","id":"g2","name":"G2"}`,
		`{"kind":"member","groupId":"g1","userId":"u1","role":"owner","roles":["oncall"]}`,
		`{"kind":"member","groupId":"g1","userId":"u3"}`,
		`{"kind":"member","groupId":"g2","userId":"u2","role":"moderator"}`,
	}, "\n")
	if rep, err := a.Import(ctx, strings.NewReader(in), nil); err != nil || rep.Created != 10 {
		t.Fatalf("import: %+v %v", rep, err)
	}
	if err := a.DeleteUser(ctx, "u2"); err != nil { // a gap in the numbers
		t.Fatal(err)
	}
	var first bytes.Buffer
	n, err := a.Index().Export(ctx, &first)
	if err != nil || n != 8 {
		t.Fatalf("export: %d lines, %v\n%s", n, err, first.String())
	}
	if !strings.Contains(first.String(), `{"kind":"user","id":"u3","seq":3,`) {
		t.Fatalf("the export lacks u3's numeric alias:\n%s", first.String())
	}

	b := openStore(t, natstest.Start(t))
	rep, err := b.Import(ctx, bytes.NewReader(first.Bytes()), nil)
	if err != nil || rep.Created != 8 || rep.Failed != 0 {
		t.Fatalf("import of the export: %+v %v", rep, err)
	}
	var second bytes.Buffer
	if _, err := b.Index().Export(ctx, &second); err != nil {
		t.Fatal(err)
	}
	if first.String() != second.String() {
		t.Fatalf("exports differ:\n%s\n%s", first.String(), second.String())
	}
	u, err := b.CreateUser(ctx, membership.User{ID: "u4", Username: "four"})
	if err != nil || u.Seq <= 3 {
		t.Fatalf("a user created after the import: %+v %v", u, err)
	}
	if rep, err := a.Import(ctx, bytes.NewReader(first.Bytes()), nil); err != nil || rep.Unchanged != 8 {
		t.Fatalf("the export imported into its own store: %+v %v", rep, err)
	}
}

// TestImportSeq: a line's numeric alias is taken by a new record, refused
// when another record holds it, and never changes an existing record's.
func TestImportSeq(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, natstest.Start(t))
	in := strings.Join([]string{
		`{"kind":"user","id":"a","username":"a","seq":7}`,
		`{"kind":"user","id":"b","username":"b"}`,
		`{"kind":"user","id":"c","username":"c","seq":7}`,
		`{"kind":"group","id":"g","name":"G","seq":3}`,
		`{"kind":"role","id":"r","name":"R","scope":"Users","seq":1}`,
	}, "\n")
	rep, err := st.Import(ctx, strings.NewReader(in), nil)
	if err != nil || rep.Created != 3 || rep.Failed != 2 || rep.Errors[0].Line != 3 || rep.Errors[1].Line != 5 {
		t.Fatalf("import: %+v %v", rep, err)
	}
	if a, _ := st.Index().User("a"); a.Seq != 7 {
		t.Fatalf("a: %+v", a)
	}
	if b, _ := st.Index().User("b"); b.Seq <= 7 {
		t.Fatalf("b was numbered %d, not after the 7 of the file", b.Seq)
	}
	if g, _ := st.Index().Group("g"); g.Seq != 3 {
		t.Fatalf("g: %+v", g)
	}
	rep, err = st.Import(ctx, strings.NewReader(`{"kind":"user","id":"a","username":"a","seq":8}`), nil)
	if err != nil || rep.Failed != 1 || !strings.Contains(rep.Errors[0].Message, "never changes") {
		t.Fatalf("changing a's seq: %+v %v", rep, err)
	}
}

// failingReader yields its data, then fails.
type failingReader struct {
	data []byte
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// TestImportStops: an input that fails in the middle of a line applies the
// lines read whole and says so; blank lines, CRLF and a last line without
// a newline are lines like any other.
func TestImportStops(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, natstest.Start(t))
	cut := errors.New("connection lost")
	r := &failingReader{data: []byte("{\"kind\":\"user\",\"id\":\"a\",\"username\":\"a\"}\r\n\n{\"kind\":\"user\",\"id\":\"b\",\"username\":\"b\"}\n{\"kind\":\"user\",\"id\":\"c\",\"usern"), err: cut}
	rep, err := st.Import(ctx, r, nil)
	var stop *membership.ImportStopError
	if !errors.As(err, &stop) || !errors.Is(err, cut) || !stop.ReadFailed || stop.Applied != 3 || rep.Created != 2 {
		t.Fatalf("import of a cut input: %+v %v", rep, err)
	}
	if want := "lines 1–3 applied; the rest was not read"; stop.Lines() != want {
		t.Fatalf("Lines() = %q, want %q", stop.Lines(), want)
	}
	if _, ok := st.Index().User("c"); ok {
		t.Fatal("the line cut in the middle was applied")
	}
	rep, err = st.Import(ctx, strings.NewReader(`{"kind":"user","id":"c","username":"c"}`), nil)
	if err != nil || rep.Created != 1 {
		t.Fatalf("a last line without newline: %+v %v", rep, err)
	}
	for _, tc := range []struct {
		e    membership.ImportStopError
		want string
	}{
		{membership.ImportStopError{}, "no line applied; the rest was not read"},
		{membership.ImportStopError{Applied: 1, Read: 2}, "line 1 applied; line 2 may not be stored; the rest was not read"},
		{membership.ImportStopError{Applied: 2048, Read: 4096, AtEOF: true}, "lines 1–2048 applied; lines 2049–4096 may not be stored"},
	} {
		if got := tc.e.Lines(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.e, got, tc.want)
		}
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/presenced/presenced/membership"
)

func TestParseGroups(t *testing.T) {
	gs, err := parseGroups("10x1000, 1x5")
	if err != nil || formatGroups(gs) != "10x1000,1x5" {
		t.Fatalf("%v %v", gs, err)
	}
	for _, bad := range []string{"", "10", "0x5", "x5", "2x-1", "axb"} {
		if _, err := parseGroups(bad); !errors.Is(err, errConfig) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestPlan(t *testing.T) {
	p, err := newPlan(Topology{Prefix: "t-", Groups: []GroupSpec{{2, 3}, {1, 4}}, Conns: 12, Subscribers: 2, Publishers: 5})
	if err != nil {
		t.Fatal(err)
	}
	if p.Users() != 10 || p.NumGroups() != 3 || p.largestGroup() != 2 {
		t.Fatalf("users %d groups %d largest %d", p.Users(), p.NumGroups(), p.largestGroup())
	}
	// Users 0-2 in g0, 3-5 in g1, 6-9 in g2. Connections 10 and 11 are
	// second sessions of users 0 and 1, who subscribe (rank < 2).
	if want := []int{4, 2, 2}; !equalInts(p.subs, want) {
		t.Fatalf("subscribers per group %v, want %v", p.subs, want)
	}
	if p.Subscriptions() != 8 {
		t.Fatalf("subscriptions %d", p.Subscriptions())
	}
	if g, ok := p.subscribes(5); ok || g != 1 {
		t.Fatalf("connection 5 (rank 2 of g1): %d %v", g, ok)
	}
	// Publishers rotate over the groups: first members, then second ones.
	if want := []int{0, 3, 6, 1, 4}; !equalInts(p.publishers, want) {
		t.Fatalf("publishers %v, want %v", p.publishers, want)
	}
	if p.publisher(7) != 6 || p.expected(7) != 2 || p.expected(0) != 4 {
		t.Fatalf("change 7 by %d expected %d", p.publisher(7), p.expected(7))
	}
	if p.userID(3) != "t-u3" || p.groupID(2) != "t-g2" {
		t.Fatal(p.userID(3), p.groupID(2))
	}
}

func TestWriteImport(t *testing.T) {
	p, err := newPlan(Topology{Prefix: "x-", Groups: []GroupSpec{{2, 2}}, Conns: 4})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := p.writeImport(&buf); err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != p.importLines() {
		t.Fatalf("%d lines, want %d", len(lines), p.importLines())
	}
	kinds := map[string]int{}
	for _, l := range lines {
		var rec membership.ImportRecord
		dec := json.NewDecoder(bytes.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rec); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		kinds[rec.Kind]++
	}
	if kinds["group"] != 2 || kinds["user"] != 4 || kinds["member"] != 4 {
		t.Fatalf("kinds %v", kinds)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

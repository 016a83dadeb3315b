package presence

import (
	"fmt"
	"slices"
	"testing"
)

// A GroupSet answers as a map does, small and past smallGroupSet.
func TestGroupSet(t *testing.T) {
	var s GroupSet
	ref := map[string]bool{}
	check := func(step string) {
		t.Helper()
		if s.Len() != len(ref) {
			t.Fatalf("%s: Len %d, want %d", step, s.Len(), len(ref))
		}
		for id, flag := range ref {
			if f, ok := s.Get(id); !ok || f != flag {
				t.Fatalf("%s: Get(%s) = %v, %v, want %v, true", step, id, f, ok, flag)
			}
		}
		if _, ok := s.Get("absent"); ok {
			t.Fatalf("%s: an absent group is in the set", step)
		}
		ids := s.IDs()
		slices.Sort(ids)
		want := make([]string, 0, len(ref))
		for id := range ref {
			want = append(want, id)
		}
		slices.Sort(want)
		if !slices.Equal(ids, want) {
			t.Fatalf("%s: IDs %v, want %v", step, ids, want)
		}
	}
	check("empty")
	for i := range 3 * smallGroupSet {
		id := fmt.Sprint("g", i)
		s.Set(id, i%2 == 0)
		ref[id] = i%2 == 0
		s.Set(id, i%3 == 0) // set again: the flag changes, the length not
		ref[id] = i%3 == 0
		check("after " + id)
		if i%4 == 1 {
			s.Delete(fmt.Sprint("g", i-1))
			delete(ref, fmt.Sprint("g", i-1))
			s.Delete("absent")
			check("after deleting g" + fmt.Sprint(i-1))
		}
	}
	for _, id := range s.IDs() {
		s.Delete(id)
		delete(ref, id)
	}
	check("all deleted")
}

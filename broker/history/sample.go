package history

import (
	"cmp"
	"slices"
	"strconv"
	"sync"
)

// record is a sample as the buckets store it (see the package doc).
type record struct {
	Online  int            `json:"online"`
	Groups  map[string]int `json:"groups,omitempty"`
	Partial bool           `json:"partial,omitempty"`
	Node    string         `json:"node,omitempty"`
}

// key names the sample of the period that starts at t (Unix ms).
func key(t int64) string { return strconv.FormatInt(t, 10) }

// parseKey is the inverse of key; false for any other key.
func parseKey(k string) (int64, bool) {
	t, err := strconv.ParseInt(k, 10, 64)
	return t, err == nil && t >= 0 && key(t) == k
}

// sample is a record in memory: group ids interned, sorted by id.
type sample struct {
	t       int64 // Unix ms
	online  int32
	partial bool
	groups  []groupCount
}

type groupCount struct {
	id uint32
	n  int32
}

// count is a group's count in x; ok is false when x does not know it (a
// partial sample that left the group out).
func (x *sample) count(id uint32, known bool) (n int, ok bool) {
	if known {
		i, found := slices.BinarySearchFunc(x.groups, id, func(g groupCount, id uint32) int { return cmp.Compare(g.id, id) })
		if found {
			return int(x.groups[i].n), true
		}
	}
	return 0, !x.partial
}

// names interns group ids: a sample holds small numbers, not strings. It
// keeps every id it was given while the Service runs, which is every group
// that had users online within the retention, and some more.
type names struct {
	mu sync.RWMutex
	// mu guards the following fields.
	ids  map[string]uint32
	list []string
}

func newNames() *names { return &names{ids: map[string]uint32{}} }

// id returns the number of name, giving it one when it has none.
func (n *names) id(name string) uint32 {
	n.mu.RLock()
	id, ok := n.ids[name]
	n.mu.RUnlock()
	if ok {
		return id
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if id, ok := n.ids[name]; ok {
		return id
	}
	id = uint32(len(n.list))
	n.ids[name] = id
	n.list = append(n.list, name)
	return id
}

// lookup returns the number of name, false when it has none.
func (n *names) lookup(name string) (uint32, bool) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	id, ok := n.ids[name]
	return id, ok
}

func (n *names) name(id uint32) string {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.list[id]
}

// sampleOf turns a stored record of time t into a sample.
func (n *names) sampleOf(t int64, r record) sample {
	s := sample{t: t, online: int32(r.Online), partial: r.Partial, groups: make([]groupCount, 0, len(r.Groups))}
	for g, c := range r.Groups {
		if c > 0 {
			s.groups = append(s.groups, groupCount{n.id(g), int32(c)})
		}
	}
	slices.SortFunc(s.groups, func(a, b groupCount) int { return cmp.Compare(a.id, b.id) })
	return s
}

// recordOf is the inverse of sampleOf.
func (n *names) recordOf(s sample, node string) record {
	r := record{Online: int(s.online), Partial: s.partial, Node: node}
	if len(s.groups) > 0 {
		r.Groups = make(map[string]int, len(s.groups))
		for _, g := range s.groups {
			r.Groups[n.name(g.id)] = int(g.n)
		}
	}
	return r
}

// series is the samples of one bucket, in time order.
type series struct {
	mu sync.RWMutex
	// mu guards the following field.
	samples []sample
}

// put adds x, replacing a sample of the same time.
func (s *series) put(x sample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.samples)
	if n == 0 || s.samples[n-1].t < x.t {
		s.samples = append(s.samples, x) // the usual case: the newest
		return
	}
	i, found := slices.BinarySearchFunc(s.samples, x.t, bySampleTime)
	if found {
		s.samples[i] = x
		return
	}
	s.samples = slices.Insert(s.samples, i, x)
}

func bySampleTime(x sample, t int64) int { return cmp.Compare(x.t, t) }

// has reports whether the sample of time t is known.
func (s *series) has(t int64) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, found := slices.BinarySearchFunc(s.samples, t, bySampleTime)
	return found
}

// trim forgets the samples older than t: the bucket has dropped them too.
func (s *series) trim(t int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, _ := slices.BinarySearchFunc(s.samples, t, bySampleTime)
	if i > 0 {
		s.samples = slices.Delete(s.samples, 0, i)
	}
}

// point is one value of a series: online at Unix ms t.
type point struct {
	t      int64
	online int
}

// points returns the values of the server (all) or of group id in
// [from, to]; a partial sample that left the group out gives none.
func (s *series) points(all bool, id uint32, known bool, from, to int64) []point {
	s.mu.RLock()
	defer s.mu.RUnlock()
	i, _ := slices.BinarySearchFunc(s.samples, from, bySampleTime)
	out := []point{}
	for ; i < len(s.samples) && s.samples[i].t <= to; i++ {
		x := &s.samples[i]
		if all {
			out = append(out, point{x.t, int(x.online)})
		} else if n, ok := x.count(id, known); ok {
			out = append(out, point{x.t, n})
		}
	}
	return out
}

// maxOver returns, for the server and each group, the highest value of the
// samples in (from, to]; false when there is none.
func (s *series) maxOver(from, to int64) (sample, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	i, _ := slices.BinarySearchFunc(s.samples, from+1, bySampleTime)
	var out sample
	found := false
	for ; i < len(s.samples) && s.samples[i].t <= to; i++ {
		if found {
			out = maxOf(out, s.samples[i])
		} else {
			out, found = s.samples[i], true
		}
	}
	return out, found
}

// maxOf is the sample with the higher value of a and b for the server
// and each group, at b's time.
func maxOf(a, b sample) sample {
	out := sample{t: b.t, online: max(a.online, b.online), partial: a.partial || b.partial,
		groups: make([]groupCount, 0, max(len(a.groups), len(b.groups)))}
	i, j := 0, 0
	for i < len(a.groups) || j < len(b.groups) {
		switch {
		case j == len(b.groups) || i < len(a.groups) && a.groups[i].id < b.groups[j].id:
			out.groups = append(out.groups, a.groups[i])
			i++
		case i == len(a.groups) || b.groups[j].id < a.groups[i].id:
			out.groups = append(out.groups, b.groups[j])
			j++
		default:
			out.groups = append(out.groups, groupCount{a.groups[i].id, max(a.groups[i].n, b.groups[j].n)})
			i++
			j++
		}
	}
	return out
}

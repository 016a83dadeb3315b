package presence

import "slices"

// GroupSet maps group ids to a flag: the groups a subscriber or a
// connection subscribed, each with whether only its counts. Most hold one
// group or a few, kept in a slice (a map costs an idle connection over 200
// bytes from its first group on); past smallGroupSet they move to a map.
// The zero value is an empty set. It is not safe for concurrent use.
type GroupSet struct {
	few  []groupFlag
	many map[string]bool
}

type groupFlag struct {
	id   string
	flag bool
}

const smallGroupSet = 8

// Get returns id's flag and whether id is in s.
func (s *GroupSet) Get(id string) (flag, ok bool) {
	if s.many != nil {
		flag, ok = s.many[id]
		return flag, ok
	}
	for _, e := range s.few {
		if e.id == id {
			return e.flag, true
		}
	}
	return false, false
}

// Set adds id to s with flag, or sets the flag of id.
func (s *GroupSet) Set(id string, flag bool) {
	if s.many != nil {
		s.many[id] = flag
		return
	}
	for i := range s.few {
		if s.few[i].id == id {
			s.few[i].flag = flag
			return
		}
	}
	if len(s.few) < smallGroupSet {
		s.few = append(s.few, groupFlag{id, flag})
		return
	}
	s.many = make(map[string]bool, 2*smallGroupSet)
	for _, e := range s.few {
		s.many[e.id] = e.flag
	}
	s.many[id] = flag
	s.few = nil
}

// Delete removes id from s.
func (s *GroupSet) Delete(id string) {
	if s.many != nil {
		delete(s.many, id)
		return
	}
	if i := slices.IndexFunc(s.few, func(e groupFlag) bool { return e.id == id }); i >= 0 {
		s.few = slices.Delete(s.few, i, i+1)
	}
}

// Len returns the number of groups in s.
func (s *GroupSet) Len() int { return len(s.few) + len(s.many) }

// IDs returns the groups of s, in no particular order, in a new slice:
// s may be changed while it is read.
func (s *GroupSet) IDs() []string {
	ids := make([]string, 0, s.Len())
	for _, e := range s.few {
		ids = append(ids, e.id)
	}
	for id := range s.many {
		ids = append(ids, id)
	}
	return ids
}

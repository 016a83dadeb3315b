package history

import (
	"fmt"
	"time"
)

// Point is one sample of a series: Online users at T.
type Point struct {
	T      time.Time
	Online int
}

// Series is the online history of the whole server or of one group.
type Series struct {
	// Group is the group, "" for the whole server.
	Group string
	// Step is the sample period; From and To bound the samples.
	Step     time.Duration
	From, To time.Time
	// Points are the samples in time order. A period no node sampled has
	// none: a gap.
	Points []Point
	// Day is the start of the current UTC day, and Peak its highest
	// sample, the earliest of equals, from the fine samples where they
	// are kept and the coarse ones before; Peak.T is zero while the day
	// has no sample.
	Day  time.Time
	Peak Point
}

// Steps returns the fine and the coarse sample periods.
func (s *Service) Steps() (fine, coarse time.Duration) { return s.cfg.Period, s.cfg.Coarse }

// Keep returns how long the samples of step are kept: the retention of
// the coarse samples for the coarse step, of the fine ones otherwise.
func (s *Service) Keep(step time.Duration) time.Duration {
	if step == s.cfg.Coarse && step != s.cfg.Period {
		return s.cfg.KeepCoarse
	}
	return s.cfg.KeepFine
}

// Query returns the samples of group ("" for the whole server) of step
// taken at or after from, and the peak of the day. A zero step is the
// fine one when from is within the fine samples' retention (give or take
// a coarse period), else the coarse one; a zero from is as far back as
// the step's samples are kept.
// A step other than the two is ErrInvalid. Group is not checked: a group
// without samples has none online.
func (s *Service) Query(group string, from time.Time, step time.Duration) (Series, error) {
	s.mu.Lock()
	running := s.started && !s.closed && s.stop != nil
	s.mu.Unlock()
	if !running {
		return Series{}, ErrClosed
	}
	now := s.cfg.Now()
	if step == 0 {
		// A coarse period's leeway: "the last hour" asked a moment ago
		// is still within the fine samples' retention.
		step = s.cfg.Period
		if !from.IsZero() && now.Sub(from) > s.cfg.KeepFine+s.cfg.Coarse {
			step = s.cfg.Coarse
		}
	}
	if step != s.cfg.Period && step != s.cfg.Coarse {
		return Series{}, fmt.Errorf("%w step %v: want %v or %v", ErrInvalid, step, s.cfg.Period, s.cfg.Coarse)
	}
	sr := &s.fine
	if step != s.cfg.Period {
		sr = &s.coarse
	}
	if oldest := now.Add(-s.Keep(step)); from.Before(oldest) {
		from = oldest
	}
	all := group == ""
	id, known := uint32(0), false
	if !all {
		id, known = s.names.lookup(group)
	}
	out := Series{Group: group, Step: step, From: from.UTC(), To: now.UTC()}
	for _, p := range sr.points(all, id, known, from.UnixMilli(), now.UnixMilli()) {
		out.Points = append(out.Points, Point{time.UnixMilli(p.t).UTC(), p.online})
	}

	out.Day = now.UTC().Truncate(24 * time.Hour)
	day, end := out.Day.UnixMilli(), now.UnixMilli()
	// The fine samples are the finer record of the time they cover; the
	// coarse ones cover the rest of the day (the one at midnight covers
	// the day before).
	fine := s.fine.points(all, id, known, max(day, now.Add(-s.cfg.KeepFine).UnixMilli()), end)
	coarse := s.coarse.points(all, id, known, day+1, end)
	var peak point
	found := false
	for _, ps := range [][]point{coarse, fine} {
		for _, p := range ps {
			if !found || p.online > peak.online || p.online == peak.online && p.t < peak.t {
				peak, found = p, true
			}
		}
	}
	if found {
		out.Peak = Point{time.UnixMilli(peak.t).UTC(), peak.online}
	}
	return out, nil
}

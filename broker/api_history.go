package broker

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/presenced/presenced/broker/history"
	"github.com/presenced/presenced/membership"
)

// historySample is one sample of GET /v1/presence/counts/history.
type historySample struct {
	T      time.Time `json:"t"`
	Online int       `json:"online"`
}

// historyPeak is the peak of the current UTC day.
type historyPeak struct {
	Day    string     `json:"day"`
	Online int        `json:"online"`
	At     *time.Time `json:"at,omitempty"`
}

// countsHistory answers the online history of the whole server or of
// ?group=, from ?from= (RFC 3339; default: as far back as kept) with
// ?step= (one of the two sample periods; default: the fine one when from
// is within its retention).
func (s *Server) countsHistory(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	for _, name := range []string{"group", "from", "step"} {
		if len(q[name]) > 1 {
			return badRequest("%s: give it once", name)
		}
	}
	if s.history == nil {
		return ErrNotReady
	}
	fine, coarse := s.history.Steps()
	group := q.Get("group")
	if group != "" {
		if !membership.ValidID(group) {
			return badRequest("group: a group id is 1 to 64 of A-Z a-z 0-9 _ -")
		}
		if err := s.watchGroup(r, group); err != nil {
			return err
		}
	} else if err := s.wholeServer(r, "history", "give a group of yours"); err != nil {
		return err
	}
	var from time.Time
	if v := q.Get("from"); v != "" {
		var err error
		if from, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return badRequest("from must be an RFC 3339 time")
		}
		if from.After(time.Now()) {
			return badRequest("from is in the future")
		}
	}
	var step time.Duration
	if v := q.Get("step"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d != fine && d != coarse {
			return badRequest("step must be %s or %s", formatStep(fine), formatStep(coarse))
		}
		step = d
	}
	series, err := s.history.Query(group, from, step)
	switch {
	case errors.Is(err, history.ErrInvalid):
		return badRequest("%v", err)
	case errors.Is(err, history.ErrClosed):
		return ErrNotReady
	case err != nil:
		return err
	}
	samples := make([]historySample, len(series.Points))
	for i, p := range series.Points {
		samples[i] = historySample{p.T, p.Online}
	}
	peak := historyPeak{Day: series.Day.Format(time.DateOnly), Online: series.Peak.Online}
	if !series.Peak.T.IsZero() {
		peak.At = &series.Peak.T
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"group":   group,
		"step":    formatStep(series.Step),
		"from":    series.From,
		"to":      series.To,
		"samples": samples,
		"peak":    peak,
	})
	return nil
}

// formatStep writes a sample period as ?step= takes it: "10s", "1m".
func formatStep(d time.Duration) string {
	switch {
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	default:
		return fmt.Sprintf("%dms", d/time.Millisecond)
	}
}

package rocketchat

import (
	"testing"
	"time"

	"github.com/presenced/presenced/broker/compat/internal/query"
)

func TestPagination(t *testing.T) {
	tests := []struct {
		raw           string
		offset, count int
	}{
		{"", 0, 50},
		{"offset=5&count=10", 5, 10},
		{"count=500", 0, 100},
		{"count=0", 0, 0},
		{"count=-3", 0, 3},
		{"offset=-2&count=2.9", 0, 2},
	}
	for _, tt := range tests {
		o, c := pagination(query.Parse(tt.raw))
		if o != tt.offset || c != tt.count {
			t.Errorf("%q: offset %d count %d, want %d %d", tt.raw, o, c, tt.offset, tt.count)
		}
	}
}

func TestParseJSDate(t *testing.T) {
	utc := func(y, mo, d, h, mi, s, ms int) time.Time {
		return time.Date(y, time.Month(mo), d, h, mi, s, ms*1e6, time.UTC)
	}
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"2019-05-22T12:11:45.392Z", utc(2019, 5, 22, 12, 11, 45, 392), true},
		{"2019-05-22T12:11:45.39281Z", utc(2019, 5, 22, 12, 11, 45, 392), true},
		{"2019-05-22T12:11Z", utc(2019, 5, 22, 12, 11, 0, 0), true},
		{"2019-05-22T14:11:45+02:00", utc(2019, 5, 22, 12, 11, 45, 0), true},
		{"2019-05-22", utc(2019, 5, 22, 0, 0, 0, 0), true},
		{"2019-05", utc(2019, 5, 1, 0, 0, 0, 0), true},
		{"2019", utc(2019, 1, 1, 0, 0, 0, 0), true},
		{"2019-05-22T12:11:45", time.Date(2019, 5, 22, 12, 11, 45, 0, time.Local), true},
		{"2019-13-01", time.Time{}, false},
		{"2019-05-22T25:00Z", time.Time{}, false},
		{"2019-05-22T24:00Z", utc(2019, 5, 23, 0, 0, 0, 0), true},
		{"yesterday", time.Time{}, false},
		{"", time.Time{}, false},
	}
	for _, tt := range tests {
		got, ok := parseJSDate(tt.in)
		if ok != tt.ok || (ok && !got.Equal(tt.want)) {
			t.Errorf("parseJSDate(%q) = %v %v, want %v %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestLimiterSweeps(t *testing.T) {
	now := time.Unix(0, 0)
	l := newLimiter(RateLimit{Calls: 1}, func() time.Time { return now })
	for i := range 100 {
		l.take(string(rune('a' + i%26)))
	}
	now = now.Add(time.Minute)
	l.take("z")
	if n := len(l.windows); n != 1 {
		t.Fatalf("%d windows kept after a minute, want 1", n)
	}
}

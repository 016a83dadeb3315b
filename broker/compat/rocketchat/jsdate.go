package rocketchat

import (
	"regexp"
	"strconv"
	"time"
)

var isoDate = regexp.MustCompile(`^([+-]\d{6}|\d{4})(?:-(\d{2})(?:-(\d{2}))?)?(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?(Z|[+-]\d{2}:\d{2})?$`)

// parseJSDate reads the ISO-8601 forms JavaScript's Date accepts: a date
// alone is UTC, a date and time without an offset is local time, and
// seconds, fraction and offset are optional. ok is false where Date would be
// invalid, so that the caller falls through as upstream's NaN comparison
// does.
func parseJSDate(s string) (t time.Time, ok bool) {
	m := isoDate.FindStringSubmatch(s)
	if m == nil {
		return time.Time{}, false
	}
	num := func(s string, def, lo, hi int) (int, bool) {
		if s == "" {
			return def, true
		}
		n, err := strconv.Atoi(s)
		return n, err == nil && n >= lo && n <= hi
	}
	year, _ := strconv.Atoi(m[1])
	month, ok1 := num(m[2], 1, 1, 12)
	day, ok2 := num(m[3], 1, 1, 31)
	hour, ok3 := num(m[4], 0, 0, 24)
	minute, ok4 := num(m[5], 0, 0, 59)
	sec, ok5 := num(m[6], 0, 0, 59)
	if !(ok1 && ok2 && ok3 && ok4 && ok5) || (m[1] == "-000000") {
		return time.Time{}, false
	}
	if hour == 24 && (minute != 0 || sec != 0 || m[7] != "" && trimZeros(m[7]) != "") {
		return time.Time{}, false
	}
	nsec := 0
	if frac := m[7]; frac != "" {
		// Date keeps milliseconds; further digits are cut.
		frac = (frac + "000")[:3]
		ms, _ := strconv.Atoi(frac)
		nsec = ms * int(time.Millisecond)
	}
	loc := time.UTC
	switch {
	case m[8] == "" && m[4] != "":
		loc = time.Local
	case m[8] != "" && m[8] != "Z":
		h, _ := strconv.Atoi(m[8][1:3])
		mm, _ := strconv.Atoi(m[8][4:6])
		off := h*3600 + mm*60
		if m[8][0] == '-' {
			off = -off
		}
		loc = time.FixedZone("", off)
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, loc), true
}

func trimZeros(s string) string {
	for len(s) > 0 && s[0] == '0' {
		s = s[1:]
	}
	return s
}

package main

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// promSample is one sample line of the Prometheus text format:
//
//	name{label="value",...} value [timestamp]
type promSample struct {
	Name   string
	Labels map[string]string // nil without labels
	Value  float64
}

// promMetrics is a scrape of /metrics: the samples of each metric name.
// Its methods treat a name that is absent as absent, not as an error: a
// server may not export every series (yet).
type promMetrics map[string][]promSample

// lookup returns the sum of every series of name (its only sample when
// it has no labels), and whether there was any.
func (m promMetrics) lookup(name string) (float64, bool) {
	ss, ok := m[name]
	var sum float64
	for _, s := range ss {
		sum += s.Value
	}
	return sum, ok
}

// value is lookup without the presence: 0 for an absent name.
func (m promMetrics) value(name string) float64 {
	v, _ := m.lookup(name)
	return v
}

// max returns the largest sample of name over its series, and whether
// there was any.
func (m promMetrics) max(name string) (float64, bool) {
	ss, ok := m[name]
	if !ok {
		return 0, false
	}
	v := ss[0].Value
	for _, s := range ss[1:] {
		v = max(v, s.Value)
	}
	return v, true
}

// parseMetrics reads a Prometheus text-format body. Lines it cannot read
// are skipped, so that one odd series does not lose the others; a body
// with such lines and no sample at all is an error.
func parseMetrics(body []byte) (promMetrics, error) {
	out := promMetrics{}
	var firstErr error
	for line := range bytes.SplitSeq(body, []byte("\n")) {
		s, ok, err := parseMetricLine(string(line))
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if ok {
			out[s.Name] = append(out[s.Name], s)
		}
	}
	if len(out) == 0 && firstErr != nil {
		return nil, fmt.Errorf("presence-bench: /metrics: %w", firstErr)
	}
	return out, nil
}

var errMetricLine = errors.New("malformed metrics line")

// parseMetricLine reads one line of the text format. ok is false for
// blank lines and comments (# HELP, # TYPE). The metric name may also be
// a quoted string among the labels ({"name",label="value"}), as servers
// write names outside the classic character set.
func parseMetricLine(line string) (s promSample, ok bool, err error) {
	line = strings.Trim(line, " \t\r")
	if line == "" || line[0] == '#' {
		return s, false, nil
	}
	fail := func(why string) (promSample, bool, error) {
		return promSample{}, false, fmt.Errorf("%w: %s: %q", errMetricLine, why, truncate(line, 120))
	}
	i := strings.IndexAny(line, "{ \t")
	if i < 0 {
		return fail("no value")
	}
	s.Name, line = line[:i], line[i:]
	if s.Name != "" && !isMetricName(s.Name) {
		return fail("bad metric name")
	}
	if line[0] == '{' {
		line = line[1:]
		for {
			line = strings.TrimLeft(line, " \t")
			if line == "" {
				return fail("unterminated labels")
			}
			if line[0] == '}' {
				line = line[1:]
				break
			}
			var key string
			quotedKey := line[0] == '"'
			if quotedKey {
				if key, line, ok = cutQuoted(line); !ok {
					return fail("bad quoted name")
				}
			} else {
				j := strings.IndexAny(line, "= \t,}")
				if j <= 0 || !isMetricName(line[:j]) || strings.Contains(line[:j], ":") {
					return fail("bad label name")
				}
				key, line = line[:j], line[j:]
			}
			line = strings.TrimLeft(line, " \t")
			if quotedKey && (strings.HasPrefix(line, ",") || strings.HasPrefix(line, "}")) {
				// A quoted string standing alone is the metric name.
				if s.Name != "" {
					return fail("two metric names")
				}
				s.Name = key
			} else {
				if !strings.HasPrefix(line, "=") {
					return fail("label without value")
				}
				line = strings.TrimLeft(line[1:], " \t")
				var val string
				if val, line, ok = cutQuoted(line); !ok {
					return fail("bad label value")
				}
				if s.Labels == nil {
					s.Labels = map[string]string{}
				}
				if _, dup := s.Labels[key]; dup {
					return fail("repeated label")
				}
				s.Labels[key] = val
				line = strings.TrimLeft(line, " \t")
			}
			if strings.HasPrefix(line, ",") {
				line = line[1:]
			} else if !strings.HasPrefix(line, "}") {
				return fail("labels not separated by commas")
			}
		}
	}
	if s.Name == "" {
		return fail("no metric name")
	}
	if line == "" || (line[0] != ' ' && line[0] != '\t') {
		return fail("no space before the value")
	}
	f := strings.Fields(line)
	if len(f) < 1 || len(f) > 2 {
		return fail("want a value and at most a timestamp")
	}
	if s.Value, err = strconv.ParseFloat(f[0], 64); err != nil {
		return fail("bad value")
	}
	if len(f) == 2 {
		if _, err := strconv.ParseInt(f[1], 10, 64); err != nil {
			return fail("bad timestamp")
		}
	}
	return s, true, nil
}

// isMetricName reports whether s matches [a-zA-Z_:][a-zA-Z0-9_:]*.
func isMetricName(s string) bool {
	for i, c := range []byte(s) {
		letter := c == '_' || c == ':' || (c|0x20 >= 'a' && c|0x20 <= 'z')
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return s != ""
}

// cutQuoted reads a double-quoted string with the escapes of the text
// format (\\, \" and \n) from the start of s, and returns it and the rest.
func cutQuoted(s string) (val, rest string, ok bool) {
	if !strings.HasPrefix(s, `"`) {
		return "", s, false
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), s[i+1:], true
		case '\\':
			i++
			if i == len(s) {
				return "", s, false
			}
			switch s[i] {
			case '\\', '"':
				b.WriteByte(s[i])
			case 'n':
				b.WriteByte('\n')
			default:
				return "", s, false
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", s, false
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

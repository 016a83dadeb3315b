package main

import (
	"errors"
	"maps"
	"math"
	"testing"
)

func TestParseMetricLine(t *testing.T) {
	for _, tc := range []struct {
		line   string
		name   string
		labels map[string]string
		value  float64
	}{
		{"presenced_frames_out_total 12345", "presenced_frames_out_total", nil, 12345},
		{"go_goroutines 42 1700000000000", "go_goroutines", nil, 42},
		{"  x\t1.5e+06\r", "x", nil, 1.5e6},
		{"presenced_fanout_window_seconds 0.025", "presenced_fanout_window_seconds", nil, 0.025},
		{`presenced_http_requests_total{route="GET /metrics",code="200"} 7`, "presenced_http_requests_total",
			map[string]string{"route": "GET /metrics", "code": "200"}, 7},
		{`h_bucket{le="+Inf"} 3`, "h_bucket", map[string]string{"le": "+Inf"}, 3},
		{`m{a="x,y}z", b = "q\"uo\\te\nd",} -2`, "m", map[string]string{"a": "x,y}z", "b": "q\"uo\\te\nd"}, -2},
		{`m{} 1`, "m", nil, 1},
		{`{"my.metric",zone="a"} 4`, "my.metric", map[string]string{"zone": "a"}, 4},
		{`{"my.metric"} 5`, "my.metric", nil, 5},
		{`m{"odd.label"="v"} 6`, "m", map[string]string{"odd.label": "v"}, 6},
		{"ns:sub_total 1", "ns:sub_total", nil, 1},
		{"g +Inf", "g", nil, math.Inf(1)},
	} {
		s, ok, err := parseMetricLine(tc.line)
		if err != nil || !ok {
			t.Errorf("%q: ok %v, %v", tc.line, ok, err)
			continue
		}
		if s.Name != tc.name || s.Value != tc.value || !maps.Equal(s.Labels, tc.labels) {
			t.Errorf("%q: got %+v", tc.line, s)
		}
	}
	if s, _, err := parseMetricLine("g NaN"); err != nil || !math.IsNaN(s.Value) {
		t.Errorf("NaN: %+v %v", s, err)
	}
	for _, line := range []string{"", "   ", "# HELP x Frames.", "# TYPE x counter"} {
		if _, ok, err := parseMetricLine(line); ok || err != nil {
			t.Errorf("%q: ok %v, %v", line, ok, err)
		}
	}
	for _, line := range []string{
		"x", "x ", "x{a=\"b\"}", "x{a=\"b\"}1", "x abc", "x 1 2 3", "x 1 1.5",
		`x{a="b" 1`, `x{a=b} 1`, `x{a} 1`, `x{="b"} 1`, `x{a="b" c="d"} 1`, `x{a="b\q"} 1`,
		`x{a="b",a="c"} 1`, `{a="b"} 1`, `x{"y"} 1`, "1x 2", "x-y 2", `x{a:b="c"} 1`,
		`x{a="unterminated} 1`,
	} {
		if s, ok, err := parseMetricLine(line); !errors.Is(err, errMetricLine) {
			t.Errorf("%q: got %+v %v %v, want an error", line, s, ok, err)
		}
	}
}

func TestParseMetrics(t *testing.T) {
	body := []byte(`# HELP presenced_frames_out_total WebSocket frames written.
# TYPE presenced_frames_out_total counter
presenced_frames_out_total 1000
presenced_status_changes_total 40
this line is odd
w{group="a"} 0.005
w{group="b"} 0.025
w{group="c"} 0.010
`)
	m, err := parseMetrics(body)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := m.lookup("presenced_frames_out_total"); !ok || v != 1000 {
		t.Errorf("frames %v %v", v, ok)
	}
	if v, ok := m.max("w"); !ok || v != 0.025 {
		t.Errorf("max w %v %v", v, ok)
	}
	if v, ok := m.lookup("w"); !ok || math.Abs(v-0.04) > 1e-12 {
		t.Errorf("sum w %v %v", v, ok)
	}
	// Absent is absent, not an error.
	if v, ok := m.lookup(metricFanoutWindow); ok || v != 0 || m.value(metricFanoutWindow) != 0 {
		t.Errorf("absent series: %v %v", v, ok)
	}
	if _, ok := m.max(metricFanoutWindow); ok {
		t.Error("max of an absent series")
	}
	var none promMetrics // a failed scrape
	if none.value("x") != 0 {
		t.Error("nil metrics")
	}
	if _, err := parseMetrics([]byte("<html>not metrics</html>\n")); err == nil {
		t.Error("HTML accepted as metrics")
	}
	if m, err := parseMetrics(nil); err != nil || len(m) != 0 {
		t.Errorf("empty body: %v %v", m, err)
	}
}

// TestFanoutMeter computes a phase's figures from two scrapes.
func TestFanoutMeter(t *testing.T) {
	m0, _ := parseMetrics([]byte("presenced_frames_out_total 100\npresenced_deltas_out_total 50\npresenced_status_changes_total 10\n"))
	m1, _ := parseMetrics([]byte("presenced_frames_out_total 2100\npresenced_deltas_out_total 2050\npresenced_status_changes_total 30\n" +
		metricFanoutWindow + " 0.005\n"))
	b := &bench{rest: newRESTClient("http://127.0.0.1:1", "", 1)}
	defer b.rest.close()
	fi, err := b.meterFanout(t.Context(), m0, nil).finish(m1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fi.FramesOut != 2000 || fi.DeltasOut != 2000 || fi.StatusChanges != 20 || fi.FramesPerChange != 100 ||
		fi.WindowMaxMs == nil || *fi.WindowMaxMs != 5 || fi.WindowSamples != 1 || len(fi.Missing) != 0 {
		t.Fatalf("%+v", fi)
	}
	// Without the window gauge, and with a counter missing.
	m1, _ = parseMetrics([]byte("presenced_frames_out_total 100\npresenced_status_changes_total 10\n"))
	fi, err = b.meterFanout(t.Context(), m0, nil).finish(m1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fi.FramesPerChange != 0 || fi.WindowMaxMs != nil ||
		len(fi.Missing) != 2 || fi.Missing[0] != metricDeltasOut || fi.Missing[1] != metricFanoutWindow {
		t.Fatalf("%+v", fi)
	}
	if _, err := b.meterFanout(t.Context(), nil, errors.New("HTTP 401")).finish(m1, nil); err == nil {
		t.Fatal("failed scrape gave figures")
	}
}

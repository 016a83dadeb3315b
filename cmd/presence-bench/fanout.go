package main

import (
	"context"
	"sync"
	"time"
)

// The server's series a fan-out figure comes from.
const (
	metricFramesOut     = "presenced_frames_out_total"      // counter: WebSocket frames written
	metricDeltasOut     = "presenced_deltas_out_total"      // counter: member changes delivered
	metricStatusChanges = "presenced_status_changes_total"  // counter: changes of a user's status
	metricFanoutWindow  = "presenced_fanout_window_seconds" // gauge: coalescing window in use
	metricSlowConsumers = "presenced_slow_consumers_total"  // counter: subscribers cut for reading too slowly
)

// FanoutInfo is what the server did to deliver the changes of one phase,
// from its /metrics: the counters' growth from the phase's start to its
// end, and the largest coalescing window seen in between.
type FanoutInfo struct {
	Seconds float64 `json:"seconds"`
	// FramesOut counts every WebSocket frame written: the deltas' frames,
	// and also hellos, subscribe replies and snapshots (in the connect
	// phase, a hello and a snapshot per connection besides the deltas).
	FramesOut float64 `json:"framesOut"`
	// DeltasOut counts member changes delivered (a frame may carry
	// several).
	DeltasOut float64 `json:"deltasOut"`
	// StatusChanges counts changes of a user's status the server applied.
	StatusChanges float64 `json:"statusChanges"`
	// FramesPerChange is FramesOut / StatusChanges (0 without changes).
	FramesPerChange float64 `json:"framesPerChange"`
	// WindowMaxMs is the largest presenced_fanout_window_seconds of
	// WindowSamples scrapes (the phase's start and end, and one a second
	// in between); nil when the server does not export the gauge. The
	// gauge is the window open at the moment of the scrape (0 when none
	// is), so the figure is a lower bound of the widest window.
	WindowMaxMs   *float64 `json:"windowMaxMs,omitempty"`
	WindowSamples int      `json:"windowSamples"`
	// Missing names the series the server did not export; their figures
	// are 0.
	Missing []string `json:"missing,omitempty"`
}

// fanoutMeter measures the fan-out of a phase: made with the phase's
// first scrape of /metrics, it samples the window gauge every second until
// finish is given the last. figures gives the figures of a part of the
// phase, from its start to a scrape, while the sampling goes on.
type fanoutMeter struct {
	start  time.Time
	m0     promMetrics
	err0   error
	cancel context.CancelFunc
	done   chan struct{}

	mu sync.Mutex
	// mu guards the following field.
	window windowMax
}

// windowMax keeps the largest window gauge of the scrapes that had it.
type windowMax struct {
	max     float64
	samples int
}

func (w *windowMax) add(m promMetrics) {
	if v, ok := m.max(metricFanoutWindow); ok {
		if w.samples == 0 || v > w.max {
			w.max = v
		}
		w.samples++
	}
}

// meterFanout starts measuring a phase whose first scrape is m0 (err0 if
// it failed). stop must be called, finish when the phase ends normally.
func (b *bench) meterFanout(ctx context.Context, m0 promMetrics, err0 error) *fanoutMeter {
	ctx, cancel := context.WithCancel(ctx)
	f := &fanoutMeter{start: time.Now(), m0: m0, err0: err0, cancel: cancel, done: make(chan struct{})}
	f.add(m0)
	go func() {
		defer close(f.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			m, err := b.rest.scrapeMetrics(ctx)
			if err != nil {
				continue
			}
			f.add(m)
		}
	}()
	return f
}

func (f *fanoutMeter) add(m promMetrics) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.window.add(m)
}

// stop ends the sampling; it may be called more than once.
func (f *fanoutMeter) stop() {
	f.cancel()
	<-f.done
}

// finish stops the sampling and computes the phase's figures from its
// last scrape m1 (err1 if it failed).
func (f *fanoutMeter) finish(m1 promMetrics, err1 error) (*FanoutInfo, error) {
	f.stop()
	return f.figures(m1, err1)
}

// figures computes the figures from the phase's start to the scrape m1
// (err1 if it failed), counting m1 among the window samples; the sampling
// goes on until stop or finish.
func (f *fanoutMeter) figures(m1 promMetrics, err1 error) (*FanoutInfo, error) {
	if f.err0 != nil || err1 != nil {
		err := f.err0
		if err == nil {
			err = err1
		}
		return nil, err
	}
	fi := &FanoutInfo{Seconds: time.Since(f.start).Seconds()}
	grew := func(name string) float64 {
		v0, ok0 := f.m0.lookup(name)
		v1, ok1 := m1.lookup(name)
		if !ok0 || !ok1 {
			fi.Missing = append(fi.Missing, name)
			return 0
		}
		return v1 - v0
	}
	fi.FramesOut = grew(metricFramesOut)
	fi.DeltasOut = grew(metricDeltasOut)
	fi.StatusChanges = grew(metricStatusChanges)
	if fi.StatusChanges > 0 {
		fi.FramesPerChange = fi.FramesOut / fi.StatusChanges
	}
	f.mu.Lock()
	f.window.add(m1)
	win := f.window
	f.mu.Unlock()
	if win.samples > 0 {
		w := win.max * 1000
		fi.WindowMaxMs, fi.WindowSamples = &w, win.samples
	} else {
		fi.Missing = append(fi.Missing, metricFanoutWindow)
	}
	return fi, nil
}

// fanoutRow writes a phase's fan-out figures in the table.
func fanoutRow(t *table, fi *FanoutInfo) {
	if fi == nil {
		return
	}
	t.row("fan-out (server)", "%.0f frames out for %.0f status changes: %.2f frames per change; %.0f deltas out",
		fi.FramesOut, fi.StatusChanges, fi.FramesPerChange, fi.DeltasOut)
	if fi.WindowMaxMs != nil {
		t.row("fan-out window, max", "%s (of %d samples, one a second)", fmtMs(*fi.WindowMaxMs), fi.WindowSamples)
	} else {
		t.row("fan-out window, max", "not exported by the server (no %s)", metricFanoutWindow)
	}
	for _, m := range fi.Missing {
		if m != metricFanoutWindow {
			t.row("  missing series", "%s", m)
		}
	}
}

// fanoutNote says why a phase has no fan-out figures.
func (b *bench) fanoutNote(phase string, err error) {
	b.note("fan-out of the %s phase not measured: %v", phase, err)
}

package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// collect sums the workers' delivery counters.
// With perSeq, out.PerSeq sums the deliveries of each change.
func (b *bench) collect(ctx context.Context, perSeq bool) (*deliveryReply, []uint64, error) {
	replies, err := b.workers.broadcast(ctx, command{Cmd: cmdCollect, PerSeq: perSeq})
	if err != nil {
		return nil, nil, err
	}
	out := &deliveryReply{Latency: &Histogram{}, Closed: map[string]int{}}
	var seqs []uint64
	for _, r := range replies {
		d := r.Delivery
		if d == nil {
			continue
		}
		if perSeq {
			if seqs == nil {
				seqs = make([]uint64, len(d.PerSeq)/4)
			}
			for i := range min(len(seqs), len(d.PerSeq)/4) {
				seqs[i] += uint64(binary.LittleEndian.Uint32(d.PerSeq[4*i:]))
			}
		}
		out.Deliveries += d.Deliveries
		out.Latency.Merge(d.Latency)
		for i, h := range d.NodeLatency {
			for len(out.NodeLatency) <= i {
				out.NodeLatency = append(out.NodeLatency, &Histogram{})
			}
			out.NodeLatency[i].Merge(h)
		}
		out.Frames += d.Frames
		out.Changes += d.Changes
		out.Stray += d.Stray
		out.LastDelivery = max(out.LastDelivery, d.LastDelivery)
		out.Open += d.Open
		out.Ended += d.Ended
		for k, v := range d.Closed {
			out.Closed[k] += v
		}
	}
	if len(out.Closed) == 0 {
		out.Closed = nil
	}
	return out, seqs, nil
}

// rssSampler records the server's RSS every 250ms until stopped.
type rssSampler struct {
	stop    chan struct{}
	done    chan struct{}
	samples []int64
}

func (b *bench) sampleRSS() *rssSampler {
	s := &rssSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			if v := b.serverRSS(); v > 0 {
				s.samples = append(s.samples, v)
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) finish() []int64 {
	close(s.stop)
	<-s.done
	return s.samples
}

// deliver makes the status changes and measures their delivery.
func (b *bench) deliver(ctx context.Context) error {
	cfg := b.cfg
	sched := schedule{T0: time.Now().Add(300 * time.Millisecond).UnixNano(), Interval: float64(time.Second) / cfg.Rate, Count: cfg.Changes}
	if _, err := b.workers.broadcast(ctx, command{Cmd: cmdSchedule, Schedule: &sched}); err != nil {
		return err
	}
	before, _, err := b.collect(ctx, false)
	if err != nil {
		return err
	}
	m0, err0 := b.rest.scrapeMetrics(ctx)
	fanout := b.meterFanout(ctx, m0, err0)
	defer fanout.stop()
	clientPIDs := append(b.workers.pids(), os.Getpid())
	cpu0, ccpu0 := b.serverCPU(), cpuOf(clientPIDs...)
	sampler := b.sampleRSS()
	lastDue := time.Unix(0, sched.due(sched.Count-1))
	var profWG sync.WaitGroup
	if cfg.ProfileDir != "" {
		secs := int(math.Ceil(time.Until(lastDue).Seconds())) + 2
		profWG.Go(func() { b.profile(ctx, "cpu-changes", fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs)) })
	}
	b.logf("making %d status changes at %.0f/s over %s", sched.Count, cfg.Rate, cfg.Publish)
	pres, err := publish(ctx, publishConfig{Mode: cfg.Publish, Sched: sched, Plan: b.plan, Conns: cfg.PublishConns, Batch: cfg.PublishBatch,
		BaseURL: b.srv.BaseURL, AdminToken: cfg.AdminToken, Secret: cfg.JWTSecret, AckTimeout: 10 * time.Second})
	if err != nil {
		sampler.finish()
		return err
	}
	expected := pres.expectedDeliveries(b.plan)
	// Drain: until everything expected arrived (with Verify: until nothing
	// arrived for a second, as coalescing may deliver less than expected
	// and the final state is only comparable once all is delivered), or
	// Drain passed since the publisher finished.
	var d *deliveryReply
	drainStart := time.Now()
	lastCount, lastProgress := uint64(0), drainStart
	quiet := false
	for {
		if d, _, err = b.collect(ctx, false); err != nil {
			sampler.finish()
			return err
		}
		now := time.Now()
		if got := d.Deliveries - before.Deliveries; got != lastCount {
			lastCount, lastProgress = got, now
		}
		quiet = now.Sub(lastProgress) > time.Second
		if quiet || (!cfg.Verify && lastCount >= expected) || now.Sub(drainStart) > cfg.Drain {
			break
		}
		if err := b.sleep(ctx, 100*time.Millisecond); err != nil {
			sampler.finish()
			return err
		}
	}
	samples := sampler.finish()
	d, perSeq, err := b.collect(ctx, true)
	if err != nil {
		return err
	}
	di := &DeliveryInfo{Publish: pres, Expected: expected, Delivered: d.Deliveries - before.Deliveries,
		Latency: d.Latency.Summary(), Frames: d.Frames - before.Frames, Marked: d.Changes - before.Changes,
		Stray: d.Stray - before.Stray, Open: d.Open, Closed: d.Closed, Ended: d.Ended,
		ServerCPU: b.serverCPU() - cpu0, ClientCPU: (cpuOf(clientPIDs...) - ccpu0).Seconds(), RSSSamples: samples,
		Quiet: quiet || lastCount >= expected}
	for _, h := range d.NodeLatency {
		di.NodeLatency = append(di.NodeLatency, h.Summary())
	}
	if expected > 0 {
		di.Ratio = float64(di.Delivered) / float64(expected)
	}
	di.Changes = classifyChanges(b.plan, pres, perSeq)
	if d.LastDelivery > 0 {
		di.DrainMs = ms(time.Unix(0, d.LastDelivery).Sub(lastDue))
	}
	if di.Delivered > 0 {
		di.CPUPerDeliveryUs = di.ServerCPU * 1e6 / float64(di.Delivered)
	}
	if pres.Accepted > 0 {
		di.CPUPerEventUs = di.ServerCPU * 1e6 / float64(pres.Accepted)
	}
	for _, v := range samples {
		di.RSSMax = max(di.RSSMax, v)
	}
	if len(samples) > 0 {
		di.RSSEnd = samples[len(samples)-1]
	}
	m1, err1 := b.rest.scrapeMetrics(ctx)
	if err0 == nil && err1 == nil {
		di.ServerDeltasOut = m1.value(metricDeltasOut) - m0.value(metricDeltasOut)
		di.ServerFramesOut = m1.value(metricFramesOut) - m0.value(metricFramesOut)
		di.SlowConsumers = m1.value(metricSlowConsumers) - m0.value(metricSlowConsumers)
	}
	if di.Fanout, err = fanout.finish(m1, err1); err != nil {
		b.fanoutNote("status-change", err)
	}
	if cfg.Verify {
		v, err := b.verify(ctx)
		if err != nil {
			return err
		}
		di.Verify = v
	}
	b.rep.Delivery = di
	profWG.Wait()
	b.logf("delivered %d of %d expected; p99 %s", di.Delivered, expected, fmtMs(di.Latency.P99))
	return nil
}

// classifyChanges sorts the accepted changes by how many of their
// subscribers received them. A change is delivered to every subscriber of
// its group or to none: coalescing drops a change for the whole group when
// a later change of the same user follows within the window, so a change
// nobody got whose user's next change arrived was superseded. A change
// some subscribers got and others did not is a lost delivery (or a
// subscriber that disconnected).
func classifyChanges(p *plan, pres *publishResult, perSeq []uint64) ChangeCounts {
	var c ChangeCounts
	stride := len(p.publishers) // the next change of the same user
	for seq, ok := range pres.ok {
		if !ok || seq >= len(perSeq) {
			continue
		}
		got, want := perSeq[seq], uint64(p.expected(seq))
		switch {
		case got >= want:
			c.Full++
		case got == 0 && seq+stride < len(perSeq) && perSeq[seq+stride] > 0:
			c.Superseded++
		case got == 0:
			c.None++
		default:
			c.Partial++
			c.Missing += want - got
		}
	}
	return c
}

// verify reads every publisher's current status text from the server and
// has the workers compare it with the last change their subscribers saw.
func (b *bench) verify(ctx context.Context) (*verifyReply, error) {
	final := map[string]int{}
	ids := make([]string, len(b.plan.publishers))
	for i, u := range b.plan.publishers {
		ids[i] = b.plan.userID(u)
	}
	for chunk := range slices.Chunk(ids, 1000) {
		body, err := b.rest.do(ctx, http.MethodGet, "/v1/presence/users?ids="+strings.Join(chunk, ","), nil)
		if err != nil {
			return nil, fmt.Errorf("presence-bench: verify: %w", err)
		}
		var resp struct {
			Users []struct{ User, Text string }
		}
		if err := json.Unmarshal(body, &resp); err != nil {
			return nil, fmt.Errorf("presence-bench: verify: %w", err)
		}
		for _, u := range resp.Users {
			if n, ok := strings.CutPrefix(u.Text, markerPrefix); ok {
				if seq, err := strconv.Atoi(n); err == nil {
					final[u.User] = seq
				}
			}
		}
	}
	replies, err := b.workers.broadcast(ctx, command{Cmd: cmdVerify, Verify: final})
	if err != nil {
		return nil, err
	}
	v := &verifyReply{}
	for _, r := range replies {
		if r.Verify != nil {
			v.Match += r.Verify.Match
			v.Total += r.Verify.Total
		}
	}
	return v, nil
}

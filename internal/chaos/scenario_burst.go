package chaos

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Burst settings: as in issue 14, 1,500 changes published 50ms apart on
// one node.
const (
	burstChanges = 300
	burstEvery   = 50 * time.Millisecond
)

// burst has several backend sources publish many acknowledged changes, 50ms
// apart, on one node, and checks what the subscribers received: every
// acknowledged change must reach a subscriber, and every node's watch
// must apply every entry of the stream.
func burst(ctx context.Context, e *Env, row *Row) error {
	e.Writers.Stop()
	_ = sleep(ctx, 2*time.Second)
	all := e.Cluster.Nodes
	before, err := e.watchCounters(ctx)
	if err != nil {
		return err
	}
	bw := newWriters(e.API, e.Cluster, e.TL, burstIDs)
	from := time.Now()
	bw.Start(burstEvery, burstChanges, all[0])
	bw.Wait()
	ph := phase{from: time.Now(), majority: all}
	row.note("%d changes acknowledged by %s in %s", bw.acked(), all[0].Name, secs(ph.from.Sub(from)))
	e.settle(ctx, &ph, 3*time.Second, 20*time.Second)
	after, err := e.watchCounters(ctx)
	if err != nil {
		return err
	}
	row.Offline = "-"
	e.judgeFalse(row, "", from, ph.to)
	e.judgeConverge(row, "", ph)

	// Entries a node's watch never applied: revisions are stream
	// sequences, and every applied entry is counted.
	var skips []string
	skipped := 0
	for _, n := range all {
		b, a := before[n.Name], after[n.Name]
		s := int((a.rev - b.rev) - (a.applied - b.applied))
		skips = append(skips, fmt.Sprintf("%s:%d", n.Name, s))
		skipped += s
	}
	row.note("stream entries skipped by each node's watch: %s", strings.Join(skips, " "))
	if skipped != 0 {
		row.fail("burst: nodes' watches skipped %d stream entries (%s)", skipped, strings.Join(skips, " "))
	}

	// What each observer received of the acknowledged changes.
	seen := make([]map[string]bool, len(e.Observers))
	backwards := 0
	for i, o := range e.Observers {
		_, sightings, _ := o.records()
		seen[i] = map[string]bool{}
		last := map[string]int{}
		for _, s := range sightings {
			if s.at.Before(from) {
				continue
			}
			seen[i][s.user+"/"+s.text] = true
			if rest, ok := strings.CutPrefix(s.text, s.user+"-"); ok {
				seq, _ := strconv.Atoi(rest)
				if seq < last[s.user] {
					backwards++
				}
				last[s.user] = seq
			}
		}
	}
	if backwards > 0 {
		row.fail("burst: observers were shown an older change after a newer one %d times", backwards)
	}
	var missed []string
	nobody, total := 0, 0
	perObserver := make([]int, len(e.Observers))
	for _, w := range bw.list {
		w.mu.Lock()
		acks := append([]ack(nil), w.acks...)
		w.mu.Unlock()
		for _, a := range acks {
			total++
			any := false
			for i := range e.Observers {
				if seen[i][w.ID+"/"+a.text] {
					any = true
				} else {
					perObserver[i]++
				}
			}
			if !any {
				nobody++
				if len(missed) < 5 {
					missed = append(missed, fmt.Sprintf("%s (rev %d)", a.text, a.rev))
				}
			}
		}
	}
	var per []string
	for i, o := range e.Observers {
		per = append(per, fmt.Sprintf("%s:%d", o.Node.Name, perObserver[i]))
	}
	row.note("acknowledged changes not received, per observer (coalescing allowed): %s; by no observer: %d of %d %v",
		strings.Join(per, " "), nobody, total, missed)
	if nobody > 0 {
		row.fail("burst: %d of %d acknowledged changes reached no subscriber: %v", nobody, total, missed)
	}
	e.finish(ctx, row, bw, all)
	return nil
}

// watchCounter is what a node's /metrics says of its watch.
type watchCounter struct {
	rev     uint64 // last revision applied
	applied uint64 // stream entries applied
}

func (e *Env) watchCounters(ctx context.Context) (map[string]watchCounter, error) {
	out := map[string]watchCounter{}
	for _, n := range e.Cluster.Nodes {
		mctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		m, err := e.API.Metrics(mctx, n.URL, "presenced_revision", "presenced_stream_entries_applied_total")
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.Name, err)
		}
		out[n.Name] = watchCounter{rev: uint64(m["presenced_revision"]), applied: uint64(m["presenced_stream_entries_applied_total"])}
	}
	return out, nil
}

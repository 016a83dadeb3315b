package main

import (
	"encoding/json"
	"fmt"
	"math/bits"
	"slices"
	"sync"
	"time"
)

// Histogram counts durations in log-linear buckets: exact below 128ns,
// then 128 buckets per power of two, so a percentile read from it is within
// 1% of the true value. Histograms of several goroutines or processes add
// up with Merge; they travel between processes as sparse JSON.
//
// A Histogram is not safe for concurrent use; shardedHist is.
type Histogram struct {
	counts   map[int]uint64
	n        uint64
	sum      int64 // nanoseconds
	min, max int64
}

const histSubBits = 7 // 128 sub-buckets per power of two

func histBucket(v int64) int {
	if v < 1<<histSubBits {
		return int(v)
	}
	e := bits.Len64(uint64(v)) - histSubBits - 1
	return (e+1)<<histSubBits + int(v>>e) - 1<<histSubBits
}

// histUpper returns the largest value that falls in bucket i.
func histUpper(i int) int64 {
	if i < 2<<histSubBits {
		return int64(i)
	}
	e := i>>histSubBits - 1
	m := int64(i&(1<<histSubBits-1) + 1<<histSubBits)
	return (m+1)<<e - 1
}

// Record adds one duration; negative durations count as 0.
func (h *Histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	if h.counts == nil {
		h.counts = make(map[int]uint64)
	}
	h.counts[histBucket(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += v
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.n == 0 {
		return
	}
	if h.counts == nil {
		h.counts = make(map[int]uint64, len(o.counts))
	}
	for b, c := range o.counts {
		h.counts[b] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// Count is the number of recorded durations.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest recorded duration.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Quantile returns the duration below which a fraction q of the recorded
// ones fall (the upper bound of its bucket, never above Max); 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	idx := make([]int, 0, len(h.counts))
	for b := range h.counts {
		idx = append(idx, b)
	}
	slices.Sort(idx)
	var seen uint64
	for _, b := range idx {
		seen += h.counts[b]
		if seen >= rank {
			return time.Duration(min(histUpper(b), h.max))
		}
	}
	return time.Duration(h.max)
}

// Summary reduces h to the figures a report shows.
func (h *Histogram) Summary() LatencySummary {
	s := LatencySummary{Count: h.n}
	if h.n == 0 {
		return s
	}
	s.Min = ms(time.Duration(h.min))
	s.Mean = ms(time.Duration(h.sum / int64(h.n)))
	s.P50 = ms(h.Quantile(0.50))
	s.P90 = ms(h.Quantile(0.90))
	s.P99 = ms(h.Quantile(0.99))
	s.P999 = ms(h.Quantile(0.999))
	s.Max = ms(time.Duration(h.max))
	return s
}

// LatencySummary is a histogram's percentiles in milliseconds.
type LatencySummary struct {
	Count uint64  `json:"count"`
	Min   float64 `json:"minMs"`
	Mean  float64 `json:"meanMs"`
	P50   float64 `json:"p50Ms"`
	P90   float64 `json:"p90Ms"`
	P99   float64 `json:"p99Ms"`
	P999  float64 `json:"p999Ms"`
	Max   float64 `json:"maxMs"`
}

func (s LatencySummary) String() string {
	if s.Count == 0 {
		return "none"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  max %s  (n=%d)",
		fmtMs(s.P50), fmtMs(s.P90), fmtMs(s.P99), fmtMs(s.Max), s.Count)
}

// ms converts d to milliseconds with microsecond precision.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func fmtMs(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.2fs", v/1000)
	case v >= 100:
		return fmt.Sprintf("%.0fms", v)
	case v >= 10:
		return fmt.Sprintf("%.1fms", v)
	}
	return fmt.Sprintf("%.2fms", v)
}

// histJSON is the wire form of a Histogram: buckets as [index, count] pairs.
type histJSON struct {
	Buckets [][2]uint64 `json:"b,omitempty"`
	N       uint64      `json:"n"`
	Sum     int64       `json:"sum"`
	Min     int64       `json:"min"`
	Max     int64       `json:"max"`
}

func (h *Histogram) MarshalJSON() ([]byte, error) {
	j := histJSON{N: h.n, Sum: h.sum, Min: h.min, Max: h.max}
	for b, c := range h.counts {
		j.Buckets = append(j.Buckets, [2]uint64{uint64(b), c})
	}
	return json.Marshal(j)
}

func (h *Histogram) UnmarshalJSON(data []byte) error {
	var j histJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	*h = Histogram{n: j.N, sum: j.Sum, min: j.Min, max: j.Max, counts: make(map[int]uint64, len(j.Buckets))}
	var total uint64
	for _, bc := range j.Buckets {
		h.counts[int(bc[0])] += bc[1]
		total += bc[1]
	}
	if total != j.N {
		return fmt.Errorf("histogram: buckets hold %d values, header says %d", total, j.N)
	}
	return nil
}

// shardedHist is a Histogram that many goroutines record into; each picks
// a shard by a number of its own (its connection index) so that they
// rarely contend.
type shardedHist struct {
	shards [32]struct {
		mu sync.Mutex
		// mu guards the following field.
		h Histogram
		_ [40]byte // keep shards on separate cache lines
	}
}

func (s *shardedHist) Record(shard int, d time.Duration) {
	sh := &s.shards[shard%len(s.shards)]
	sh.mu.Lock()
	sh.h.Record(d)
	sh.mu.Unlock()
}

// Snapshot returns the merged histogram; with reset it starts over.
func (s *shardedHist) Snapshot(reset bool) *Histogram {
	out := &Histogram{}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		out.Merge(&sh.h)
		if reset {
			sh.h = Histogram{}
		}
		sh.mu.Unlock()
	}
	return out
}

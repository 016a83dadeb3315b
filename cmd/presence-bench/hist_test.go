package main

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistBuckets(t *testing.T) {
	// Every value falls in a bucket whose upper bound is at or above it,
	// within 1%, and buckets are ordered like their values.
	prev := -1
	for _, v := range []int64{0, 1, 127, 128, 129, 255, 256, 257, 1000, 1e6, 123456789, 1e12} {
		b := histBucket(v)
		if b < prev {
			t.Fatalf("bucket of %d is %d, below the previous %d", v, b, prev)
		}
		prev = b
		up := histUpper(b)
		if up < v || float64(up-v) > 0.01*float64(v)+1 {
			t.Fatalf("value %d: bucket %d upper bound %d", v, b, up)
		}
		if b > 0 && histUpper(b-1) >= v {
			t.Fatalf("value %d also fits bucket %d", v, b-1)
		}
	}
}

func TestHistQuantiles(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	var exact []int64
	for range 100000 {
		v := int64(r.ExpFloat64() * float64(5*time.Millisecond))
		exact = append(exact, v)
		h.Record(time.Duration(v))
	}
	slices.Sort(exact)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := exact[int(q*float64(len(exact)))-1]
		got := int64(h.Quantile(q))
		if float64(got) < float64(want)*0.99 || float64(got) > float64(want)*1.02 {
			t.Errorf("q%.3f: got %d, exact %d", q, got, want)
		}
	}
	if h.Max() != time.Duration(exact[len(exact)-1]) || h.Count() != 100000 {
		t.Errorf("max %v count %d", h.Max(), h.Count())
	}
}

func TestHistMergeAndJSON(t *testing.T) {
	var a, b Histogram
	for i := range 1000 {
		a.Record(time.Duration(i) * time.Microsecond)
		b.Record(time.Duration(i) * time.Millisecond)
	}
	b.Record(-time.Second) // counts as 0
	raw, err := json.Marshal(&b)
	if err != nil {
		t.Fatal(err)
	}
	var back Histogram
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if back.Summary() != b.Summary() {
		t.Fatalf("round trip: %+v != %+v", back.Summary(), b.Summary())
	}
	a.Merge(&back)
	if a.Count() != 2001 || a.Max() != 999*time.Millisecond || a.Summary().Min != 0 {
		t.Fatalf("merged: %+v", a.Summary())
	}
	if err := json.Unmarshal([]byte(`{"b":[[1,2]],"n":3}`), &back); err == nil {
		t.Fatal("inconsistent histogram accepted")
	}
	var empty Histogram
	if s := empty.Summary(); s.Count != 0 || s.P99 != 0 || s.String() != "none" {
		t.Fatalf("empty: %+v", s)
	}
}

func TestShardedHist(t *testing.T) {
	var s shardedHist
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 1000 {
				s.Record(g, time.Duration(i))
			}
		}()
	}
	for range 4 {
		<-done
	}
	if n := s.Snapshot(true).Count(); n != 4000 {
		t.Fatalf("count %d", n)
	}
	if n := s.Snapshot(false).Count(); n != 0 {
		t.Fatalf("after reset: %d", n)
	}
}

package main

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestHistIndexMonotonicAndClose(t *testing.T) {
	prev := -1
	for v := uint64(0); v < 1<<22; v += 1 + v/97 {
		i := histIndex(v)
		if i < prev {
			t.Fatalf("index not monotonic at %d: %d < %d", v, i, prev)
		}
		prev = i
		mid := histValue(i)
		if d := float64(mid) - float64(v); d > float64(v)*0.04+1 || -d > float64(v)*0.04+1 {
			t.Fatalf("bucket midpoint %d too far from %d", mid, v)
		}
	}
	if i := histIndex(^uint64(0)); i >= histBuckets {
		t.Fatalf("max value index %d out of range %d", i, histBuckets)
	}
}

func TestHistQuantilesMatchSorted(t *testing.T) {
	var h hist
	vals := make([]int64, 10000)
	for i := range vals {
		vals[i] = rand.Int64N(200000)
		h.record(vals[i])
	}
	slices.Sort(vals)
	s := h.snapshot()
	for _, q := range []float64{0.5, 0.9, 0.99} {
		want := float64(vals[int(q*float64(len(vals)))-1])
		got := float64(s.quantile(q))
		if got < want*0.95-2 || got > want*1.05+2 {
			t.Errorf("q%.2f = %v, want ≈ %v", q, got, want)
		}
	}
	if s.quantile(1) != uint64(vals[len(vals)-1]) {
		t.Errorf("max quantile = %d, want %d", s.quantile(1), vals[len(vals)-1])
	}
	var m histSnap
	m.merge(s)
	m.merge(s)
	if m.total() != 2*uint64(len(vals)) || m.quantile(0.5) != s.quantile(0.5) {
		t.Errorf("merge changed the distribution: total %d, p50 %d vs %d", m.total(), m.quantile(0.5), s.quantile(0.5))
	}
}

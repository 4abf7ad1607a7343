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

// Missing messages count as later than every arrival.
func TestQuantileWithMissing(t *testing.T) {
	var h hist
	for i := int64(1); i <= 100; i++ {
		h.record(i)
	}
	s := h.snapshot()
	if v, ok := s.quantileWithMissing(0.99, 0); !ok || v != s.quantile(0.99) {
		t.Errorf("no missing: %d, %v; want %d", v, ok, s.quantile(0.99))
	}
	// 100 arrived, 100 missing: the median is the last arrival, p90 is
	// among the missing.
	if v, ok := s.quantileWithMissing(0.5, 100); !ok || v != 100 {
		t.Errorf("p50 with half missing = %d, %v; want 100", v, ok)
	}
	if _, ok := s.quantileWithMissing(0.9, 100); ok {
		t.Error("p90 with half missing is bounded")
	}
	// 1 missing of 101: p50 moves up by half a rank at most.
	if v, ok := s.quantileWithMissing(0.5, 1); !ok || v < 50 || v > 52 {
		t.Errorf("p50 with one missing = %d, %v", v, ok)
	}
}

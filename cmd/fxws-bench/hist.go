package main

import (
	"math/bits"
	"sync/atomic"
)

// Latencies are recorded in microseconds into a log-linear histogram: exact
// below 64 µs, then 32 sub-buckets per power of two (≈3 % resolution). It is
// safe for concurrent use without locks, so thousands of reader goroutines can
// record into one, and histograms from several load processes merge by adding
// bucket counts.

const (
	histLinear  = 64
	histSubBits = 5
	histSub     = 1 << histSubBits
	histBuckets = histLinear + 59*histSub
)

// hist is a concurrent latency histogram in microseconds.
type hist struct {
	counts [histBuckets]atomic.Uint64
	max    atomic.Uint64
}

func histIndex(v uint64) int {
	if v < histLinear {
		return int(v)
	}
	shift := bits.Len64(v) - (histSubBits + 1)
	return histLinear + (shift-1)*histSub + int(v>>uint(shift)) - histSub
}

// histValue is the midpoint of bucket i.
func histValue(i int) uint64 {
	if i < histLinear {
		return uint64(i)
	}
	shift := uint((i-histLinear)/histSub + 1)
	m := uint64((i-histLinear)%histSub + histSub)
	return m<<shift + (uint64(1)<<shift)/2
}

func (h *hist) record(us int64) {
	if us < 0 {
		us = 0 // clocks of one machine; a negative value is rounding
	}
	v := uint64(us)
	h.counts[histIndex(v)].Add(1)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

func (h *hist) reset() {
	for i := range h.counts {
		h.counts[i].Store(0)
	}
	h.max.Store(0)
}

// histSnap is a serialisable, mergeable copy of a histogram.
type histSnap struct {
	Counts map[int]uint64 `json:"c,omitempty"`
	Max    uint64         `json:"m,omitempty"`
}

func (h *hist) snapshot() histSnap {
	s := histSnap{Counts: map[int]uint64{}, Max: h.max.Load()}
	for i := range h.counts {
		if c := h.counts[i].Load(); c > 0 {
			s.Counts[i] = c
		}
	}
	return s
}

func (s *histSnap) merge(o histSnap) {
	if s.Counts == nil {
		s.Counts = map[int]uint64{}
	}
	for i, c := range o.Counts {
		s.Counts[i] += c
	}
	s.Max = max(s.Max, o.Max)
}

func (s histSnap) total() uint64 {
	var n uint64
	for _, c := range s.Counts {
		n += c
	}
	return n
}

// quantile returns the q-quantile (0..1) in microseconds; 0 when empty.
func (s histSnap) quantile(q float64) uint64 {
	n := s.total()
	if n == 0 {
		return 0
	}
	return s.atRank(uint64(q*float64(n) + 0.5))
}

// atRank returns the rank-th smallest value (1-based, clamped).
func (s histSnap) atRank(rank uint64) uint64 {
	if rank >= s.total() {
		return s.Max
	}
	rank = max(rank, 1)
	var seen uint64
	for i := 0; i < histBuckets; i++ {
		seen += s.Counts[i]
		if seen >= rank {
			return min(histValue(i), s.Max)
		}
	}
	return s.Max
}

// quantileWithMissing is quantile over the recorded values and missing
// more that are later than all of them; false when the quantile falls
// among those.
func (s histSnap) quantileWithMissing(q float64, missing uint64) (uint64, bool) {
	n := s.total()
	if missing == 0 || n == 0 {
		return s.quantile(q), missing == 0 || n > 0
	}
	rank := max(uint64(q*float64(n+missing)+0.5), 1)
	if rank > n {
		return 0, false
	}
	return s.atRank(rank), true
}

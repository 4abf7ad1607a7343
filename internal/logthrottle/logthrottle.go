// Package logthrottle keeps a warning that a fault repeats thousands of
// times a second (a Redis outage, junk on a channel, a full queue) to one
// log line a second.
package logthrottle

import (
	"sync/atomic"
	"time"
)

// Throttle lets a repeated warning through at most once a second. The zero
// value is ready; it is safe for concurrent use.
type Throttle struct {
	last       atomic.Int64 // unix nanos of the last warning let through
	suppressed atomic.Uint64
}

// Allow reports whether to log now, and how many were held back since the
// last one let through.
func (t *Throttle) Allow() (bool, uint64) {
	now := time.Now().UnixNano()
	last := t.last.Load()
	if now-last < int64(time.Second) || !t.last.CompareAndSwap(last, now) {
		t.suppressed.Add(1)
		return false, 0
	}
	return true, t.suppressed.Swap(0)
}

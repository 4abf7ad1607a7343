// Package failfast fails sends at once while the Redis they go to is known
// to be unreachable, rather than each waiting out its timeout, and lets one
// through now and then to find Redis back. The Redis broker and the
// emitter both keep one.
package failfast

import (
	"math"
	"sync/atomic"
	"time"
)

// ProbeEvery is the pause, after one, before the next send is let through
// while the gate is shut: each costs its caller the client's dial retries
// or its timeout, and finds Redis back as soon as one succeeds.
const ProbeEvery = 250 * time.Millisecond

// Gate is open until Shut, and shut until Open. It is safe for concurrent
// use. Its times are on a monotonic clock of its own: a wall clock stepped
// back would hold the probes back as long.
type Gate struct {
	cause   atomic.Pointer[error]
	probeAt atomic.Int64 // when the next probe may go (MaxInt64 while one is under way)
	shutAt  atomic.Int64 // when Shut was last called
	born    time.Time
}

// New returns an open gate.
func New() *Gate { return &Gate{born: time.Now()} }

func (g *Gate) now() int64 { return int64(time.Since(g.born)) }

// Admit says what to do with a send. A non-nil cause: fail it at once,
// with the failure that shut the gate. Otherwise send it; probe says it is
// the one let through while the gate is shut, and the caller calls Probed
// once it is over, whatever its outcome.
func (g *Gate) Admit() (probe bool, cause error) {
	c := g.cause.Load()
	if c == nil {
		return false, nil
	}
	next := g.probeAt.Load()
	if g.now() < next || !g.probeAt.CompareAndSwap(next, math.MaxInt64) {
		return false, *c
	}
	return true, nil
}

// Probed lets the next probe through ProbeEvery from now.
func (g *Gate) Probed() { g.probeAt.Store(g.now() + int64(ProbeEvery)) }

// Shut fails sends from now on, with err as their cause. It reports
// whether the gate was open.
func (g *Gate) Shut(err error) bool {
	g.shutAt.Store(g.now())
	return g.cause.Swap(&err) == nil
}

// Open lets sends through again. It reports whether the gate was shut.
func (g *Gate) Open() bool { return g.cause.Swap(nil) != nil }

// IsShut reports whether sends fail at once.
func (g *Gate) IsShut() bool { return g.cause.Load() != nil }

// ShutWithin reports whether the gate is shut and was last shut within d:
// with nothing sent, a gate shut long ago says nothing of Redis now.
func (g *Gate) ShutWithin(d time.Duration) bool {
	return g.IsShut() && g.now()-g.shutAt.Load() < int64(d)
}

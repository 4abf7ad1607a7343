package helper

import (
	"runtime"
	"time"
)

// pacer spaces the pauses of one long loop: a client leaving a thousand
// rooms, a join or leave naming hundreds. Go does not preempt a goroutine
// for 10 ms, and on a busy processor every other client's message waits
// behind such a loop (a client in 1024 rooms took 3 ms to remove, all
// of it at once, under the lab's attack). The loop asks due after each
// step; every pacerStride steps due reads the clock, and once yieldAfter
// has passed since the last pause it says it is time for another.
type pacer struct {
	since int64 // unix nanoseconds of the start or the last pause
	steps int
}

// pacerStride is how many steps run between two readings of the clock:
// each step costs a microsecond or two, a reading some tens of ns.
const pacerStride = 16

func newPacer() pacer { return pacer{since: time.Now().UnixNano()} }

// due reports whether the loop should pause now; if so, it counts the
// pause as taken.
func (p *pacer) due() bool {
	p.steps++
	if p.steps%pacerStride != 0 {
		return false
	}
	now := time.Now().UnixNano()
	if now-p.since < int64(yieldAfter) {
		return false
	}
	p.since = now
	return true
}

// pause lets the work waiting behind a long loop run: it dispatches the
// polled connections that have input (on a busy processor nothing else
// looks, see pollNow) and goes to the back of the run queue. Call it
// holding no lock.
func (h *WebSocketServerHelper) pause() {
	if h.poller != nil {
		h.poller.pollNow(time.Now().UnixNano())
	}
	runtime.Gosched()
}

// pauseScanOf is the message size from which handleMessage pauses after
// each full scan of a message (depth, then syntax): a scan costs about a
// nanosecond per byte, so a 150 KB join ran for most of a millisecond
// per scan, with every other client's message waiting behind it.
const pauseScanOf = 32 << 10

// pauseAfterScan pauses c's burst after a scan of a message of n bytes, if
// it is a large one. What the burst held for c goes out first.
func (c *client) pauseAfterScan(n int) {
	if n < pauseScanOf {
		return
	}
	c.uncork()
	c.h.pause()
}

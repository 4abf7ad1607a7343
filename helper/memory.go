package helper

import (
	"context"
	"runtime"
	"runtime/debug"
	"time"

	"go.uber.org/zap"
)

// releaseMinChange is the smallest change in connections worth a release:
// below it the memory at stake is a few megabytes, which Go's scavenger
// returns on its own soon enough.
const releaseMinChange = 256

// releaseBusyRate is the delivery rate above which the server is not quiet:
// a release costs a full collection, and on a busy server that is latency
// taken from the messages in flight.
const releaseBusyRate = 1000 // messages per second

// releaser decides when to hand memory back to the operating system after
// a crowd of connections has come or gone. Go keeps freed pages for reuse
// until a collection lowers its heap goal, and an idle process runs no
// collection until the forced one two minutes on: without help, the garbage
// of a connection storm (upgrade buffers, handshake goroutines' stacks,
// authentication), or the memory of a crowd that left, stays resident for
// minutes, and after that collection Go still keeps up to twice the live
// heap.
type releaser struct {
	after time.Duration

	mark      int    // clients at the last release (or at start)
	peak      int    // high-water mark since the last release
	clients   int    // at the last look
	total     uint64 // connections ever, at the last look
	delivered uint64 // messages delivered ever, at the last look
	quietFor  time.Duration
}

// observe takes a look, every step, at the client count and the numbers of
// connections and deliveries ever made, and reports whether to release now:
// nobody has connected or left, and fewer than releaseBusyRate messages a
// second went out, for r.after; and since the last release either a crowd
// has gone (the count fell to half of its high-water mark or less, by
// releaseMinChange or more) or one has come (it grew by releaseMinChange
// and by a quarter or more).
func (r *releaser) observe(clients int, total, delivered uint64, step time.Duration) bool {
	busy := delivered-r.delivered > uint64(releaseBusyRate*step.Seconds())
	r.delivered = delivered
	if clients != r.clients || total != r.total || busy {
		r.clients, r.total, r.quietFor = clients, total, 0
		r.peak = max(r.peak, clients)
		return false
	}
	r.quietFor += step
	if r.quietFor < r.after {
		return false
	}
	gone := r.peak-clients >= releaseMinChange && clients <= r.peak/2
	came := clients-r.mark >= releaseMinChange && clients-r.mark >= r.mark/4
	if !gone && !came {
		return false
	}
	r.mark, r.peak = clients, clients
	return true
}

// releaseMemory runs the releaser until ctx ends.
func (h *WebSocketServerHelper) releaseMemory(ctx context.Context) {
	r := &releaser{after: h.opts.ReleaseMemoryAfter}
	step := min(max(r.after/5, 10*time.Millisecond), time.Second)
	t := time.NewTicker(step)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !r.observe(h.reg.len(), h.stats.connections.Load(), h.stats.delivered.Load(), step) {
			continue
		}
		start := time.Now()
		if h.bursts != nil {
			h.bursts.shedIdle()
		}
		h.reg.compact()
		// Two collections: the first one moves what sync.Pools hold to
		// their victim caches, the second frees it; then the freed pages go
		// back.
		runtime.GC()
		debug.FreeOSMemory()
		h.stats.memoryReleases.Add(1)
		h.log.Debug("memory returned to the OS after the client count settled",
			zap.Int("clients", r.clients), zap.Duration("took", time.Since(start)))
	}
}

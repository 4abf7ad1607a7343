package helper

import (
	"sync"

	"go.uber.org/zap"
)

// encQueue runs the outbound transformer for the messages that come from
// the broker, off the broker's worker: the transformer is the app's code,
// and the worker, which by default handles everything this instance
// receives from Redis one message at a time, must never wait for it (one
// slow call would hold up every channel). Each client's messages are
// transformed and sent one after another, in the order they came; clients
// go in parallel, up to EncryptedBatchLimit calls at once, taking turns a
// message at a time. A client with encQueueMax messages waiting has the
// next dropped (counted as DroppedBackpressure).
//
// Local sends (Send, SendToRoom, …) still transform on the caller's
// goroutine and wait, as their results count what was handed over.
type encQueue struct {
	h *WebSocketServerHelper

	mu      sync.Mutex
	pending map[*client]*encPending // clients with messages waiting or in a call
	ready   []*client               // from head on: clients with messages waiting and no call running
	head    int
	free    []*encPending // drained, kept for the next fan-out
	workers int
}

type encPending struct {
	items   []encItem
	next    int  // the first item not yet taken
	running bool // a worker has one of its messages
	queued  bool // it is in ready
}

type encItem struct {
	m      *outgoing
	fanout bool
}

const (
	// encQueueMax is how many messages may wait for one client's
	// transformer.
	encQueueMax = 1024
	// encFreeMax bounds the drained entries kept for reuse: about one per
	// encrypted recipient of a fan-out, so that a steady stream of them
	// allocates nothing.
	encFreeMax = 4096
)

func newEncQueue(h *WebSocketServerHelper) *encQueue {
	return &encQueue{h: h, pending: make(map[*client]*encPending)}
}

// add queues m for c.
func (q *encQueue) add(c *client, m *outgoing, fanout bool) {
	q.mu.Lock()
	p := q.pending[c]
	if p == nil {
		if n := len(q.free); n > 0 {
			p = q.free[n-1]
			q.free = q.free[:n-1]
		} else {
			p = &encPending{}
		}
		q.pending[c] = p
	}
	if len(p.items)-p.next >= encQueueMax {
		q.mu.Unlock()
		q.h.stats.droppedBackpressure.Add(1)
		if ok, n := q.h.encQueueLog.Allow(); ok {
			q.h.log.Warn("outbound transformer falling behind; message dropped for client",
				zapClient(c.id), zap.Int("waiting", encQueueMax), zap.Uint64("suppressed", n))
		}
		return
	}
	p.items = append(p.items, encItem{m, fanout})
	if !p.running && !p.queued {
		p.queued = true
		q.ready = append(q.ready, c)
	}
	// Workers are busy with a call or about to take the next client:
	// one more, up to the limit, whenever a client is waiting.
	spawn := q.workers < q.h.opts.EncryptedBatchLimit && len(q.ready) > q.head
	if spawn {
		q.workers++
	}
	q.mu.Unlock()
	if spawn && !q.spawn() {
		q.mu.Lock()
		q.workers--
		q.mu.Unlock()
	}
}

// spawn starts a worker unless Shutdown is waiting for its tasks: under
// acceptMu, so that no worker is added to the tasks Shutdown has started
// waiting for (every client is closed then, and what is queued for them is
// dropped with them). Not unless Shutdown has begun: with
// Options.ShutdownSpread the clients not closed yet are still served, and
// their messages from the broker waited for good behind a worker refused
// (found in review).
func (q *encQueue) spawn() bool { return q.h.goTaskUntilTasksWaited(q.work) }

// work transforms and sends one waiting message at a time, of the client
// whose turn it is, until none is waiting.
func (q *encQueue) work() {
	for {
		q.mu.Lock()
		if q.head == len(q.ready) {
			q.workers--
			q.ready, q.head = q.ready[:0], 0
			if cap(q.ready) > encFreeMax {
				q.ready = nil // let a crowd's backing array go
			}
			q.mu.Unlock()
			return
		}
		c := q.ready[q.head]
		q.ready[q.head] = nil
		q.head++
		if q.head > 1024 && 2*q.head > len(q.ready) {
			// A queue that never empties: reuse the front.
			n := copy(q.ready, q.ready[q.head:])
			clear(q.ready[n:])
			q.ready, q.head = q.ready[:n], 0
		}
		p := q.pending[c]
		p.queued, p.running = false, true
		it := p.items[p.next]
		p.items[p.next] = encItem{}
		p.next++
		if p.next > 64 && 2*p.next > len(p.items) {
			n := copy(p.items, p.items[p.next:])
			clear(p.items[n:])
			p.items, p.next = p.items[:n], 0
		}
		q.mu.Unlock()

		// A client gone or going (or the server shutting down) gets
		// nothing more: no call for it.
		if !c.contextEnded() && !c.closing() && q.h.deliverOneEncrypted(c, it.m, it.fanout) {
			q.h.stats.delivered.Add(1)
		}

		q.mu.Lock()
		p.running = false
		if p.next < len(p.items) {
			p.queued = true
			q.ready = append(q.ready, c)
		} else {
			delete(q.pending, c)
			if cap(p.items) <= 64 && len(q.free) < encFreeMax {
				p.items, p.next = p.items[:0], 0
				q.free = append(q.free, p)
			}
		}
		q.mu.Unlock()
	}
}

package helper

import (
	"errors"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"go.uber.org/zap"
)

// writeBatch is the most the writer goroutine takes from the queue at a
// time; the rest stays queued, where new frames join it.
const writeBatch = 256 << 10

// closeGrace is how long a connection is kept after the server's close frame
// went out, for the peer's close reply; then the socket is closed.
const closeGrace = time.Second

// outbound is a client's queue of compiled frames. Frames are shared,
// read-only slices (one per message, whatever the number of recipients).
//
// A frame is first written straight to the socket without blocking; only
// what the socket does not take is queued, and a writer goroutine exists only
// while the queue is not empty. An idle client therefore holds no goroutine
// and no buffer for writing.
type outbound struct {
	// The fields a fan-out touches come first, with the client's own
	// (see client), so that a delivery reaches as few cache lines as it
	// can: with thousands of recipients each is a miss.
	mu     sync.Mutex
	queued int // bytes waiting in queue
	queue  [][]byte
	// sock is the socket's descriptor for the fast path's non-blocking
	// sends, -1 without one; written once, before the client is
	// registered. Sends go to it directly, not through RawConn.Control,
	// whose reference count on the descriptor and the objects it reaches
	// were a third of a delivery's user-space CPU in profiles of a
	// fan-out: each is one more cold cache line per recipient. What
	// Control guaranteed (the descriptor is not closed, and its number not
	// reused, during the write) mu and shut guarantee instead.
	sock       int32
	writing    bool // a writer goroutine owns the socket's write side
	dirty      bool // queued frames wait for the flusher
	closing    bool // a close frame is queued or sent; nothing more is accepted
	readerDone bool // the read loop has ended; close the socket once drained
	// shut is set before the socket is closed for good, and from then on
	// nothing is written: the fast path sends to sock directly, holding
	// mu, so this is what keeps a send from reaching a descriptor that is
	// closed, or whose number a new connection has taken.
	shut bool
	// corked: a burst is answering the input of one read, and what is sent
	// to the client meanwhile (error events, pongs, fan-outs) waits until
	// it is done and goes out in one write. A client that sends fifty bad
	// messages in one packet gets its fifty errors in one system call, not
	// fifty. The burst uncorks before any read that may wait and, for the
	// rest of the read's input, before any application callback, so
	// neither a handler's own sends nor anything the client waits for is
	// held while the server waits.
	corked bool
	// keyed: the queue's frames have their protocol.Latest keys in
	// pooled.keys. A flag here, in the cache lines a fan-out touches, so
	// that a delivery without a key never reaches for them.
	keyed  bool
	pooled *pooledQueue // the pooled arrays behind queue, if any
	// inline backs queue while it holds at most two frames, so queueing
	// a fan-out frame allocates nothing; a queue that grew past it is
	// dropped once drained, so an idle client keeps no backing array.
	inline [2][]byte
	// closeTimer ends a closing connection whose peer does not finish the
	// handshake in time. It is stopped once the socket is closed anyway:
	// left to fire, it would keep the whole client reachable for the grace
	// period and start a goroutine just to find it gone, which under
	// connection churn held thousands of dead clients and grew the runtime's
	// goroutine table for good.
	closeTimer *time.Timer
}

// socketClosedLocked is called, with mu held, by whoever closes the socket
// for good, before closing it.
func (o *outbound) socketClosedLocked() {
	o.shut = true
	if o.closeTimer != nil {
		o.closeTimer.Stop()
		o.closeTimer = nil
	}
}

// sendResult says what became of a frame handed to a client.
type sendResult int

const (
	sent sendResult = iota
	droppedClosing
	droppedBackpressure
)

// send queues a data frame, applying the backpressure limit, and writes it
// at once if nothing is pending.
func (c *client) send(frame []byte) sendResult {
	return c.push(frame, false, false, "")
}

// push hands frame to the socket or the queue. Control frames (pongs,
// pings) may go past the backpressure limit, being small and what keeps the
// connection healthy, but not once the queue is over it: each ping a client
// sends asks for a pong, and a client that pings without reading would
// otherwise queue pongs without end. A peer that reads nothing has no use
// for them anyway (RFC 6455 lets a server answer only the latest ping).
//
// A frame with a latest key first takes the frame of that key still
// waiting in the queue out of it (see protocol.Latest): it goes behind
// what was queued before it, in its turn, and the stale one is not sent.
func (c *client) push(frame []byte, control, fanout bool, latest string) sendResult {
	o := &c.out
	o.mu.Lock()
	if o.closing || o.readerDone || o.shut {
		o.mu.Unlock()
		return droppedClosing
	}
	// The waiting frame of the key is taken out only once this one is sure
	// to take its place: one that the limit drops leaves it queued.
	stale := -1
	if latest != "" && o.keyed {
		stale = o.latestIndexLocked(latest)
	}
	queued := o.queued
	if stale >= 0 {
		queued -= len(o.queue[stale])
	}
	limit := c.h.opts.BackpressureLimit
	// Control frames get what latest values get (below): a queue that
	// holds them may sit over the limit for as long as their stream runs,
	// and a pong refused all that while would end a client that reads.
	if control && (o.queued > 2*limit || o.queued > limit && !o.keyed) {
		o.mu.Unlock()
		return droppedBackpressure
	}
	over := queued+len(frame) > limit
	if over && latest != "" && !control {
		// A latest value may take what waits up to twice the limit, not
		// counting the batch the writer has in hand: the queue holds at
		// most one per key, and one dropped here would leave the client on
		// a stale value for good once its key has nothing waiting (found
		// in a ticker trial: the final prices of 666 pairs never came,
		// behind a queue full of other keys, of plain messages, or of a
		// write stuck on a client that stopped reading).
		waiting := len(frame)
		for i, f := range o.queue {
			if i != stale {
				waiting += len(f)
			}
		}
		over = waiting > 2*limit
	}
	if !control && queued > 0 && over {
		o.mu.Unlock()
		c.h.stats.droppedBackpressure.Add(1)
		if latest != "" {
			c.h.stats.droppedLatest.Add(1)
		}
		if c.h.opts.CloseOnBackpressureLimit {
			c.h.log.Warn("backpressure limit exceeded, closing client", zapClient(c.id))
			c.closeWith(closeBackpressure, reasonBackpressure)
		}
		return droppedBackpressure
	}
	if stale >= 0 {
		o.dropAtLocked(stale)
		c.h.stats.superseded.Add(1)
	}
	ok := c.enqueueLockedMode(frame, fanout, latest)
	o.mu.Unlock()
	if !ok {
		return droppedClosing
	}
	return sent
}

// enqueueLocked writes what it can now and queues the rest; o.mu is held.
func (c *client) enqueueLocked(frame []byte) { c.enqueueLockedMode(frame, false, "") }

// enqueueLockedMode is enqueueLocked, or, for a fan-out, hands the frame to
// the flusher. o.mu is held. It reports false when the frame was dropped
// because the socket is closed or broke on this very write.
func (c *client) enqueueLockedMode(frame []byte, fanout bool, latest string) bool {
	o := &c.out
	if o.shut {
		return false // the socket is closed: whoever closed it cleans up
	}
	// A frame never overtakes queued ones: with anything queued it joins
	// the queue, even when no writer or flusher owns it yet.
	if o.sock >= 0 && !o.writing && (fanout || o.dirty || o.corked || len(o.queue) > 0) {
		o.appendFrame(frame, latest)
		o.queued += len(frame)
		if !o.dirty && !o.corked {
			o.dirty = true
			c.h.flush.add(c)
		}
		return true
	}
	if !o.writing && o.sock >= 0 {
		n, err := sendNow(o.sock, frame)
		if err != nil {
			// The socket is broken: the read side will clean up.
			c.terminateLocked()
			return false
		}
		if n == len(frame) {
			return true
		}
		frame = frame[n:]
	}
	o.appendFrame(frame, latest)
	o.queued += len(frame)
	if !o.writing {
		o.writing = true
		go c.writeLoop()
	}
	return true
}

// writeLoop drains the queue with blocking, deadline-bounded writes and
// exits when it is empty.
func (c *client) writeLoop() {
	o := &c.out
	var bufs net.Buffers
	for {
		o.mu.Lock()
		if len(o.queue) == 0 {
			o.releaseQueue()
			// Lift the deadline before handing the socket back to the
			// inline path: a deadline left to expire would fail every later
			// non-blocking write (the poller checks it first) and cut a
			// healthy client long after it caught up.
			_ = c.conn.SetWriteDeadline(time.Time{})
			o.writing = false
			readerDone := o.readerDone
			if readerDone {
				o.socketClosedLocked()
			}
			o.mu.Unlock()
			if readerDone {
				_ = c.conn.Close()
			}
			return
		}
		// Take at most writeBatch bytes (splitting a frame if need be).
		bufs = bufs[:0]
		taken, i := 0, 0
		for ; i < len(o.queue) && taken < writeBatch; i++ {
			f := o.queue[i]
			if rest := writeBatch - taken; len(f) > rest {
				bufs = append(bufs, f[:rest])
				o.queue[i] = f[rest:]
				taken += rest
				break // the rest of this frame stays at the head
			}
			bufs = append(bufs, f)
			taken += len(f)
		}
		kept := copy(o.queue, o.queue[i:])
		clear(o.queue[kept:])
		o.queue = o.queue[:kept]
		o.shiftKeys(i)
		o.mu.Unlock()

		n, err := c.writeSteadily(&bufs)

		o.mu.Lock()
		o.queued -= int(n)
		if err != nil {
			o.writing = false
			o.releaseQueue()
			o.queued = 0
			o.mu.Unlock()
			if errors.Is(err, os.ErrDeadlineExceeded) {
				// Too slow, not gone: say so to the disconnect callback,
				// which would otherwise see what a drop looks like.
				c.noteClose(ws.StatusAbnormalClosure, ReasonWriteTimeout, "")
				c.h.log.Info("write timeout, dropping client", zapClient(c.id), zap.String("remoteAddr", c.remoteAddr))
			} else {
				c.h.log.Debug("write failed, dropping client", zapClient(c.id), zapErr(err))
			}
			c.terminate()
			return
		}
		o.mu.Unlock()
	}
}

// writeSteadily writes bufs with blocking writes. Each write has WriteTimeout
// to make progress: a deadline that passes after some bytes went out
// starts another, so only a client that takes nothing for WriteTimeout is
// cut, however slowly it reads. (net.Buffers.WriteTo leaves in bufs what
// was not written.)
func (c *client) writeSteadily(bufs *net.Buffers) (int64, error) {
	var n int64
	for {
		_ = c.conn.SetWriteDeadline(time.Now().Add(c.h.opts.WriteTimeout))
		m, err := bufs.WriteTo(c.conn)
		n += m
		if err != nil && m > 0 && len(*bufs) > 0 && errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		return n, err
	}
}

// flushQueued writes c's queue for the flusher: one non-blocking sendmsg;
// what the socket does not take goes to a writer goroutine.
func (c *client) flushQueued(iov *[]iovec) {
	c.out.mu.Lock()
	c.flushQueuedLocked(iov)
	c.out.mu.Unlock()
}

// flushQueuedLocked is flushQueued with c.out.mu held.
func (c *client) flushQueuedLocked(iov *[]iovec) {
	o := &c.out
	o.dirty = false
	if o.writing || len(o.queue) == 0 {
		return
	}
	if o.shut {
		o.releaseQueue()
		o.queued = 0
		return
	}
	n, err := sendQueueNow(o.sock, o.queue, iov)
	if err != nil {
		o.releaseQueue()
		o.queued = 0
		c.terminateLocked()
		return
	}
	o.queued -= n
	i := 0
	for ; i < len(o.queue) && n >= len(o.queue[i]); i++ {
		n -= len(o.queue[i])
	}
	if i < len(o.queue) && n > 0 {
		o.queue[i] = o.queue[i][n:]
	}
	kept := copy(o.queue, o.queue[i:])
	clear(o.queue[kept:])
	o.queue = o.queue[:kept]
	o.shiftKeys(i)
	if kept > 0 {
		o.writing = true
		go c.writeLoop()
		return
	}
	o.releaseQueue()
}

// cork holds what is sent to c until uncork; only a burst reading c corks
// it (after each read that brought input), and only with the fast write
// path.
func (c *client) cork() {
	if c.raw == nil || c.rd.corked {
		return
	}
	c.rd.corked = true
	c.out.mu.Lock()
	c.out.corked = true
	c.out.mu.Unlock()
}

// uncork writes what was held since cork, in one write. It writes without
// letting go of the lock in between: a send from another goroutine (a
// SendToClient, the sweep's ping, a close) that came between the uncork
// and the write would otherwise go out ahead of the held frames, or, taken
// by the socket in part, be queued behind them and spliced.
func (c *client) uncork() {
	if !c.rd.corked {
		return
	}
	c.rd.corked = false
	o := &c.out
	o.mu.Lock()
	o.corked = false
	if !o.writing && !o.dirty && len(o.queue) > 0 {
		iov := iovecs.Get().(*[]iovec)
		c.flushQueuedLocked(iov)
		iovecs.Put(iov)
	}
	o.mu.Unlock()
}

// iovecs holds the scratch vectors of uncorking bursts.
var iovecs = sync.Pool{New: func() any { v := make([]iovec, 0, 16); return &v }}

// pooledQueue is the storage of a queue that outgrew inline, or that
// holds a frame with a protocol.Latest key: the frames, and while keyed,
// their keys, aligned with them ("" for a frame without one). Keys live
// here rather than in every client, whose size class they would push up
// (480 to 512 bytes): only a client with such a frame waiting carries
// them, and only until its queue drains.
type pooledQueue struct {
	frames [][]byte
	keys   []string
}

// queuePool holds the storage of queues that outgrew inline.
var queuePool = sync.Pool{New: func() any { return &pooledQueue{frames: make([][]byte, 0, 32)} }}

// appendFrame queues frame, with its latest key: in inline while it fits
// and has no key, else in pooled storage; nothing is allocated in the
// steady state.
func (o *outbound) appendFrame(frame []byte, latest string) {
	if o.queue == nil {
		o.queue = o.inline[:0]
	}
	if o.pooled == nil && (len(o.queue) == cap(o.queue) || latest != "") {
		p := queuePool.Get().(*pooledQueue)
		p.frames = append(p.frames[:0], o.queue...)
		clear(o.inline[:])
		o.pooled = p
		o.queue = p.frames
	}
	if latest != "" && !o.keyed {
		keys := o.pooled.keys[:0]
		for range o.queue {
			keys = append(keys, "")
		}
		o.pooled.keys, o.keyed = keys, true
	}
	if o.keyed {
		o.pooled.keys = append(o.pooled.keys, latest)
	}
	o.queue = append(o.queue, frame)
}

// releaseQueue drops an empty (or abandoned) queue, returning its pooled
// storage, so that an idle client holds none.
func (o *outbound) releaseQueue() {
	if p := o.pooled; p != nil {
		q := o.queue[:cap(o.queue)]
		clear(q)
		clear(p.keys[:cap(p.keys)])
		if cap(q) <= 4096 && cap(p.keys) <= 4096 {
			p.frames, p.keys = q[:0], p.keys[:0]
			queuePool.Put(p)
		}
		o.pooled = nil
	}
	clear(o.inline[:])
	o.queue = nil
	o.keyed = false
}

// shiftKeys drops the keys of the n frames taken from the head of the
// queue.
func (o *outbound) shiftKeys(n int) {
	if !o.keyed {
		return
	}
	keys := o.pooled.keys
	kept := copy(keys, keys[n:])
	clear(keys[kept:])
	o.pooled.keys = keys[:kept]
}

// latestIndexLocked is the index of the frame queued under key that no
// write has begun, or -1. While a writer owns the socket the head may be
// the rest of a frame partly written, which must go out whole: it is
// never a candidate.
func (o *outbound) latestIndexLocked(key string) int {
	start := 0
	if o.writing {
		start = 1
	}
	keys := o.pooled.keys
	for i := start; i < len(keys); i++ {
		if keys[i] == key {
			return i
		}
	}
	return -1
}

// dropAtLocked takes the frame at i out of the queue.
func (o *outbound) dropAtLocked(i int) {
	o.queued -= len(o.queue[i])
	o.queue = slices.Delete(o.queue, i, i+1)
	o.pooled.keys = slices.Delete(o.pooled.keys, i, i+1)
}

// sendControl queues a control frame (pong, ping).
func (c *client) sendControl(frame []byte) { c.push(frame, true, false, "") }

// closeWith starts the closing handshake: the close frame goes out after
// what is already queued, nothing is accepted after it, and the socket is
// closed once the peer answers or closeGrace has passed.
func (c *client) closeWith(code ws.StatusCode, reason string) bool {
	return c.closeNoting(code, reason, false)
}

// closeNoting is closeWith; idle marks the idle sweep's close.
func (c *client) closeNoting(code ws.StatusCode, reason string, idle bool) bool {
	o := &c.out
	o.mu.Lock()
	if o.closing || o.readerDone {
		o.mu.Unlock()
		return false
	}
	o.closing = true
	// What the frame carries is what is noted, unless the peer's close
	// came first.
	reason = fitCloseReason(reason)
	c.note(&closeNote{code: code, reason: reason, by: CloseByServer, idle: idle})
	c.enqueueLocked(closeFrame(code, reason))
	// The peer has closeGrace to take what is queued and answer; a peer
	// that reads nothing cannot hold the socket longer than that.
	o.closeTimer = time.AfterFunc(closeGrace+100*time.Millisecond, c.terminate)
	o.mu.Unlock()
	// The session is over: release callbacks waiting on the client's
	// context now, or a message callback blocked on it would keep the read
	// loop (and Shutdown) from ever seeing the peer's close.
	c.endContext()
	_ = c.conn.SetReadDeadline(time.Now().Add(closeGrace))
	return true
}

// readerExited is called once by the read loop on its way out. Queued frames
// are still written (bounded by the write timeout); then the socket closes.
// A queue no writer owns yet (frames waiting for the flusher, or held by a
// cork) gets a writer now: closing at once would drop it, and with it the
// answer to the peer's close frame, which is queued behind them.
func (c *client) readerExited() {
	o := &c.out
	o.mu.Lock()
	o.readerDone = true
	closeNow := false
	switch {
	case o.writing:
		// The writer closes the socket once the queue is drained.
	case len(o.queue) > 0 && !o.shut:
		o.writing = true
		go c.writeLoop()
	default:
		o.socketClosedLocked()
		closeNow = true
	}
	o.mu.Unlock()
	if closeNow {
		_ = c.conn.Close()
	}
}

func (c *client) closing() bool {
	c.out.mu.Lock()
	defer c.out.mu.Unlock()
	return c.out.closing
}

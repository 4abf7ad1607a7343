package helper

import (
	"errors"
	"io"
	"math/bits"
	"runtime"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/fxws/websocket/protocol"
	"github.com/gobwas/ws"
)

// readBufferSize is the pooled buffer a connection borrows while it has bytes
// to parse. Frames that do not fit get a buffer of their own, which grows
// with what arrives (largeFrameStart).
const readBufferSize = 4096

// largeFrameStart is the first buffer of a frame larger than the read
// buffer whose payload has not arrived yet; it doubles as more comes in.
const largeFrameStart = 8 << 10

var readBuffers = sync.Pool{New: func() any { b := make([]byte, readBufferSize); return &b }}

// frameBuffers pools the buffers of frames larger than the read buffer, by
// power-of-two size class from 8 KiB: a client that sends large messages
// (or an attacker sending megabyte frames) would otherwise allocate one per
// frame, and drive the collector for everyone. Class k holds 8 KiB << k.
var frameBuffers [20]sync.Pool

const frameClassShift = 13 // 8 KiB

// frameClass is the size class for a frame of size bytes; -1 if none fits.
func frameClass(size int) int {
	k := bits.Len(uint(size-1)) - frameClassShift
	if k < 0 {
		k = 0
	}
	if k >= len(frameBuffers) {
		return -1
	}
	return k
}

// getFrameBuffer returns a buffer of size bytes, pooled when a class fits.
func getFrameBuffer(size int) *[]byte {
	k := frameClass(size)
	if k < 0 {
		b := make([]byte, size)
		return &b
	}
	if p, ok := frameBuffers[k].Get().(*[]byte); ok {
		*p = (*p)[:size]
		return p
	}
	b := make([]byte, size, 1<<(k+frameClassShift))
	return &b
}

// putFrameBuffer gives a frame's buffer back once nothing refers to it.
func putFrameBuffer(p *[]byte) {
	c := cap(*p)
	if k := frameClass(c); k >= 0 && c == 1<<(k+frameClassShift) {
		frameBuffers[k].Put(p)
	}
}

// reader parses client frames from the socket. It lives in the client and
// keeps its state between bursts of input; between bursts it gives its buffer
// back, so an idle connection holds none.
type reader struct {
	buf     *[]byte
	r, w    int
	pending []byte  // unparsed input held outside buf: what the HTTP server had buffered before the upgrade, or what a yielding burst set aside
	large   *[]byte // the current frame's own buffer, when it did not fit buf

	fragments            []byte // a fragmented message being reassembled
	fragmented           bool
	fragmentedBinary     bool
	fragmentedCompressed bool

	// deflate: permessage-deflate was negotiated, so a message may come
	// compressed (RSV1 on its first frame).
	deflate bool

	// polled: the poller owns readiness, so a burst ends at a frame
	// boundary instead of blocking. mayRead: a read at a boundary is
	// expected to find data (readiness was signalled, or the last read
	// filled the buffer).
	polled  bool
	mayRead bool
	corked  bool  // the client's output is held for the burst (see outbound.corked)
	reads   uint8 // reads at frame boundaries in this burst
}

// burstReads bounds the reads one burst makes at frame boundaries (each up
// to readBufferSize bytes). A client that keeps its socket full is then
// handed back to the poller, whose level-triggered event puts it behind the
// other ready connections instead of letting it monopolise a processor.
const burstReads = 4

// errBurstEnd ends a burst: everything that arrived has been handled.
var errBurstEnd = errors.New("burst end")

// fill reads more bytes into the buffer, borrowing one if needed. Inside a
// frame (midFrame) it always reads; at a frame boundary a polled connection
// reads only when input is expected, and otherwise ends the burst.
func (c *client) fill(midFrame bool) error {
	rd := &c.rd
	atBoundary := !midFrame && rd.r == rd.w
	if atBoundary && len(rd.pending) == 0 {
		if rd.polled {
			if !rd.mayRead || rd.reads >= burstReads {
				return errBurstEnd
			}
			rd.reads++
		} else if rd.buf == nil && c.raw != nil {
			if err := c.raw.waitReadable(); err != nil {
				return err
			}
		}
	}
	if rd.buf == nil {
		rd.buf = readBuffers.Get().(*[]byte)
		rd.r, rd.w = 0, 0
	}
	b := *rd.buf
	if rd.r > 0 && (rd.w == len(b) || rd.r == rd.w) {
		rd.w = copy(b, b[rd.r:rd.w])
		rd.r = 0
	}
	if len(rd.pending) > 0 {
		rd.w += rd.takePending(b[rd.w:])
		if rd.polled {
			c.cork()
		}
		return nil
	}
	space := len(b) - rd.w
	// A read may wait (inside a frame, or when a full buffer was all there
	// was): nothing the client waits for may be held meanwhile. Answers to
	// what one read brought are held, and leave together.
	c.uncork()
	n, err := c.conn.Read(b[rd.w:])
	rd.w += n
	rd.mayRead = n == space
	if n > 0 {
		if rd.polled {
			c.cork()
		}
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// release returns the buffer to the pool once everything in it is parsed.
func (rd *reader) release() {
	if rd.buf != nil && rd.r == rd.w {
		readBuffers.Put(rd.buf)
		rd.buf = nil
		rd.r, rd.w = 0, 0
	}
}

// takePending copies what it can of the input set aside into dst.
func (rd *reader) takePending(dst []byte) int {
	n := copy(dst, rd.pending)
	rd.pending = rd.pending[n:]
	if len(rd.pending) == 0 {
		rd.pending = nil
	}
	return n
}

// spill moves a small remainder of unparsed input out of the pooled buffer
// and gives the buffer back; the next fill takes the remainder first.
func (rd *reader) spill() {
	rest := rd.buffered()
	if len(rest) == 0 || len(rest) > readBufferSize/2 {
		return
	}
	spilled := make([]byte, len(rest), len(rest)+len(rd.pending))
	copy(spilled, rest)
	rd.pending = append(spilled, rd.pending...)
	rd.r = rd.w
	rd.release()
}

func (rd *reader) buffered() []byte {
	if rd.buf == nil {
		return nil
	}
	return (*rd.buf)[rd.r:rd.w]
}

// next returns the next frame. The payload is unmasked and valid until the
// following call. A frame that has begun is always read to its end (a burst
// never stops inside a frame); a client that trickles one is cut by the idle
// timeout.
func (c *client) next() (frameHeader, []byte, error) {
	rd := &c.rd
	var h frameHeader
	var n int
	for {
		var err error
		h, n, err = parseHeader(rd.buffered())
		if err == nil {
			break
		}
		if err != errNeedMore {
			return h, nil, err
		}
		if err := c.fill(len(rd.buffered()) > 0); err != nil {
			return h, nil, err
		}
	}
	rd.r += n
	if err := checkClientHeader(h, rd.deflate); err != nil {
		return h, nil, err
	}
	// The limit is read once the header is in, not before a read that
	// may wait: authentication can finish meanwhile.
	if h.length > int64(c.payloadLimit()) {
		return h, nil, errTooBig
	}
	size := int(h.length)
	var payload []byte
	if size <= readBufferSize-n || size <= len(rd.buffered()) {
		// Fits in the pooled buffer (after compaction).
		for len(rd.buffered()) < size {
			if rd.r > 0 {
				b := *rd.buf
				rd.w = copy(b, b[rd.r:rd.w])
				rd.r = 0
			}
			if err := c.fill(true); err != nil {
				return h, nil, err
			}
		}
		payload = (*rd.buf)[rd.r : rd.r+size]
		rd.r += size
	} else {
		// The buffer follows what has arrived, doubling as the payload
		// comes in, not what the header announces: sized by the header,
		// 14 bytes of it held MaxPayloadLength of memory for as long as
		// the client then kept quiet (found in a security audit).
		// What is there already (the kernel's queue included) is taken
		// in one buffer.
		have := len(rd.buffered()) + len(rd.pending)
		if queued, ok := c.raw.unread(); ok {
			have += queued
		}
		rd.large = getFrameBuffer(min(size, max(have, largeFrameStart)))
		payload = (*rd.large)[:min(size, cap(*rd.large))] // all of the size class
		got := copy(payload, rd.buffered())
		rd.r += got
		rd.release() // all of it copied: not held while waiting
		got += rd.takePending(payload[got:])
		c.uncork() // the reads below may wait
		for got < size {
			if got == len(payload) {
				grown := getFrameBuffer(min(size, 2*len(payload)))
				copy(*grown, payload)
				putFrameBuffer(rd.large)
				rd.large, payload = grown, (*grown)[:min(size, cap(*grown))]
			}
			m, err := c.conn.Read(payload[got:])
			got += m
			if err != nil && got < size {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return h, nil, err
			}
		}
		// More may have come meanwhile; where the kernel can say, ask it,
		// or the burst's next read would wait for the client's next
		// message, holding its worker and a read buffer (found in review).
		rd.mayRead = true
		if queued, ok := c.raw.unread(); ok {
			rd.mayRead = queued > 0
		}
	}
	unmask(payload, h.mask)
	return h, payload, nil
}

var errTooBig = &closeError{code: ws.StatusMessageTooBig, reason: "Received too big message"}

// readFrames parses and handles frames until the input at hand is used up
// (polled connections: it returns true) or the connection is over (false).
// It answers control frames, reassembles fragmented messages and hands
// complete messages to the protocol layer.
func (c *client) readFrames() bool {
	rd := &c.rd
	since := time.Now().UnixNano()
	for {
		hdr, payload, err := c.next()
		if err == errBurstEnd {
			rd.release()
			return true
		}
		if err != nil {
			c.readFailed(err)
			return false
		}
		at := time.Now()
		now := at.UnixNano()
		if rd.polled {
			c.h.poller.pollNow(now)
		}
		c.lastSeen.Store(now)
		switch hdr.op {
		case ws.OpPing:
			// A ping costs a read and a pong: it is charged to the message
			// budget, or a ping flood would cost the server with no limit
			// to stop it.
			if !c.closing() && c.h.admitMessage(c, c.h.mono(at)) {
				c.sendControl(compileFrame(ws.OpPong, payload))
				if c.h.opts.PingsAreHeartbeats {
					c.lastActivity.Store(now)
				}
			}
		case ws.OpPong:
			// Nothing is owed for a pong, but a flood of them costs a read
			// each: charged like a ping.
			if !c.closing() {
				c.h.admitMessage(c, c.h.mono(at))
			}
		case ws.OpClose:
			code, err := parseClosePayload(payload)
			if err != nil {
				c.readFailed(err)
				return false
			}
			noted := code
			if len(payload) == 0 {
				noted = ws.StatusNoStatusRcvd // answered with 1000, reported as received
			}
			c.noteClose(noted, closeReasonOf(payload), CloseByClient)
			c.closeWith(code, closeReasonOf(payload)) // echoed whole, as the original (Bun) does
			return false
		case ws.OpText, ws.OpBinary:
			if rd.fragmented {
				c.readFailed(protocolError("Received new data frame inside a fragmented message"))
				return false
			}
			compressed := hdr.rsv&0x4 != 0
			if !hdr.fin {
				// Each frame of a message is charged: this first one
				// here, those after it as they come (the last when the
				// message is delivered). Over the budget, the client is
				// closing, and the rest of the message is read only to
				// reach the close.
				if !c.closing() {
					c.h.admitMessage(c, c.h.mono(at))
				}
				rd.fragmented = true
				rd.fragmentedBinary = hdr.op == ws.OpBinary
				rd.fragmentedCompressed = compressed
				rd.fragments = append(rd.fragments[:0], payload...)
				break
			}
			c.lastActivity.Store(now)
			if !c.deliverMessage(payload, hdr.op == ws.OpBinary, compressed, c.h.mono(at)) {
				return false
			}
		case ws.OpContinuation:
			if !rd.fragmented {
				c.readFailed(protocolError("Received continuation frame outside a fragmented message"))
				return false
			}
			if len(rd.fragments)+len(payload) > c.payloadLimit() {
				c.readFailed(errTooBig)
				return false
			}
			// A message cut into a thousand frames costs a thousand reads,
			// and counts as much.
			if !hdr.fin && !c.closing() {
				c.h.admitMessage(c, c.h.mono(at))
			}
			if c.closing() { // the rest is read only to reach the close
				if hdr.fin {
					rd.fragmented, rd.fragments = false, nil
				}
				break
			}
			rd.fragments = append(rd.fragments, payload...)
			if hdr.fin {
				rd.fragmented = false
				c.lastActivity.Store(now)
				if !c.deliverMessage(rd.fragments, rd.fragmentedBinary, rd.fragmentedCompressed, c.h.mono(at)) {
					return false
				}
				rd.fragments = nil
			}
		}
		// Everything that outlives the frame was copied out of it:
		// control answers, fragments, and a message's data for handlers.
		if rd.large != nil {
			putFrameBuffer(rd.large)
			rd.large = nil
		}
		rd.release()
		if t := time.Now().UnixNano(); t-since >= int64(yieldAfter) {
			// Between frames, so that the wait in the run queue need not
			// hold the read buffer (on a saturated processor, hundreds of
			// bursts wait there at once) nor the answers so far.
			rd.spill()
			held := rd.corked
			c.uncork()
			runtime.Gosched()
			since = time.Now().UnixNano()
			if held {
				c.cork()
			}
		}
	}
}

// yieldAfter is how long a burst runs before it yields, between frames.
// Go does not preempt a goroutine for 10 ms, and a client sending many
// small messages fills a burst with thousands of them: without yielding,
// quiet clients' messages would queue behind it for tens of milliseconds.
const yieldAfter = 20 * time.Microsecond

// readLoop reads a connection from a goroutine of its own, for the life of
// the connection: the way of connections the poller does not watch.
func (c *client) readLoop() {
	for c.readFrames() {
	}
	c.finish()
}

// burst handles one stretch of input of a polled connection, then hands the
// connection back to the poller. Only the holder of c.reading runs it.
func (c *client) burst(signalled bool) {
	c.rd.mayRead = signalled
	c.rd.reads = 0
	ok := c.readFrames()
	c.uncork()
	// Bursts are where a busy processor spends its time, so they keep the
	// poller's view fresh (see pollNow).
	c.h.poller.pollNow(time.Now().UnixNano())
	if !ok {
		c.finish()
		return
	}
	c.reading.Store(false)
	if err := c.h.poller.arm(c); err != nil {
		// Closed meanwhile; whoever closed it may have left the clean-up
		// to us.
		if c.reading.CompareAndSwap(false, true) {
			c.finish()
		}
	}
}

// readable is the poller's signal that c has input (or hung up).
func (c *client) readable() {
	if c.reading.CompareAndSwap(false, true) {
		c.h.bursts.run(c)
	}
}

// terminate closes the socket at once. A polled connection has no read loop
// to notice, so unless a burst is under way (it will see the closed socket),
// terminate runs the disconnect path itself.
func (c *client) terminate() {
	c.out.mu.Lock()
	c.closeSocketLocked()
	c.out.mu.Unlock()
	c.endContext()
}

// terminateLocked is terminate with c.out.mu held. The context ends in a
// goroutine of its own: endContext takes c.mu.
func (c *client) terminateLocked() {
	c.closeSocketLocked()
	go c.endContext()
}

// closeSocketLocked closes the socket and, if the read side is free, ends
// the connection. The session is over: terminate's callers end its
// context too, or a callback waiting on it would keep the read side (and
// Shutdown) from ever seeing the socket closed.
func (c *client) closeSocketLocked() {
	c.out.socketClosedLocked()
	_ = c.conn.Close()
	if c.rd.polled && c.reading.CompareAndSwap(false, true) {
		go c.finish()
	}
}

// finish is the end of every connection; it runs once, from whoever holds
// the read side for good.
func (c *client) finish() {
	if c.rd.buf != nil {
		readBuffers.Put(c.rd.buf)
		c.rd.buf = nil
	}
	c.rd.fragments = nil
	c.readerExited()
	if c.rd.polled {
		c.h.poller.forget(c)
	}
	c.h.disconnect(c)
	c.h.conns.Done()
}

// deliverMessage hands a complete message on, inflating it first when it
// came compressed. A client that is being closed, or is over its message
// rate, costs no inflating: a compressed frame of a few hundred bytes can
// stand for the whole MaxPayloadLength. What a message leaves behind for
// handlers is copied out of it (as out of the read buffer), so the
// inflated bytes go straight back to the pool.
func (c *client) deliverMessage(msg []byte, binary, compressed bool, arrived int64) bool {
	c.h.stats.received.Add(1)
	if c.closing() {
		return true // the server has said goodbye; only the close reply matters
	}
	if !c.h.admitMessage(c, arrived) {
		return true
	}
	if !compressed {
		return c.deliverInbound(msg, binary)
	}
	lim := &c.h.opts.Limits
	maxLen, left := c.payloadLimit(), c.inflated.left(arrived, lim)
	out, err := inflateMessage(msg, min(maxLen, left))
	if err == errTooBig && left < maxLen {
		c.h.overRate(c, "client over its inflate budget; closing")
		return true
	}
	if err != nil {
		c.readFailed(err)
		return false
	}
	c.inflated.spend(arrived, len(*out), lim)
	c.h.stats.inflated.Add(1)
	c.pauseAfterScan(len(*out))
	ok := c.deliverInbound(*out, binary)
	putFrameBuffer(out)
	return ok
}

// deliverInbound validates a complete message and hands it on. Binary
// messages are read as text, as the original does (it calls toString() on
// them). A text message must be UTF-8 (RFC 6455 closes with 1007); a binary
// one may hold anything, so one that is not UTF-8 is merely not JSON and
// gets the protocol's error event, as in the original.
func (c *client) deliverInbound(msg []byte, binary bool) bool {
	if !utf8.Valid(msg) {
		if binary {
			c.h.sendError(c, protocol.ErrTextInvalidFormat)
			return true
		}
		c.readFailed(&closeError{code: ws.StatusInvalidFramePayloadData, reason: "Received invalid UTF-8"})
		return false
	}
	c.h.handleMessage(c, msg)
	return true
}

// readFailed ends a connection after a read error: protocol violations get
// their close code, everything else (EOF, reset, deadline) just ends.
func (c *client) readFailed(err error) {
	var ce *closeError
	if !errors.As(err, &ce) {
		return
	}
	c.h.log.Debug("closing client after protocol violation", zapClient(c.id), zapErr(err))
	c.closeWith(ce.code, ce.reason)
	c.uncork() // the close frame goes now, not after the drain below
	// Closing a socket with unread input makes the kernel send a reset,
	// which can destroy the close frame before the peer reads it. Drain
	// until the peer closes or closeWith's deadline passes.
	var scratch [512]byte
	for {
		if _, err := c.conn.Read(scratch[:]); err != nil {
			return
		}
	}
}

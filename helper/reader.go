package helper

import (
	"errors"
	"io"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/fxws/websocket/protocol"
	"github.com/gobwas/ws"
)

// readBufferSize is the pooled buffer a connection borrows while it has bytes
// to parse. Frames that do not fit get a buffer of their own size.
const readBufferSize = 4096

var readBuffers = sync.Pool{New: func() any { b := make([]byte, readBufferSize); return &b }}

// reader parses client frames from the socket. Between bursts it gives its
// buffer back: an idle connection holds none.
type reader struct {
	c       *client
	buf     *[]byte
	r, w    int
	pending []byte // bytes the HTTP server had buffered before the upgrade
}

// fill reads more bytes into the buffer, borrowing one if needed.
func (rd *reader) fill() error {
	if rd.buf == nil {
		if len(rd.pending) == 0 && rd.c.raw != nil {
			if err := rd.c.raw.waitReadable(); err != nil {
				return err
			}
		}
		rd.buf = readBuffers.Get().(*[]byte)
		rd.r, rd.w = 0, 0
	}
	b := *rd.buf
	if rd.r > 0 && rd.w == len(b) {
		rd.w = copy(b, b[rd.r:rd.w])
		rd.r = 0
	}
	if len(rd.pending) > 0 {
		n := copy(b[rd.w:], rd.pending)
		rd.pending = rd.pending[n:]
		if len(rd.pending) == 0 {
			rd.pending = nil
		}
		rd.w += n
		return nil
	}
	n, err := rd.c.conn.Read(b[rd.w:])
	rd.w += n
	if n > 0 {
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

func (rd *reader) buffered() []byte {
	if rd.buf == nil {
		return nil
	}
	return (*rd.buf)[rd.r:rd.w]
}

// next returns the next frame. The payload is unmasked and valid until the
// following call.
func (rd *reader) next(maxPayload int) (frameHeader, []byte, error) {
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
		if err := rd.fill(); err != nil {
			return h, nil, err
		}
	}
	rd.r += n
	if err := checkClientHeader(h); err != nil {
		return h, nil, err
	}
	if h.length > int64(maxPayload) {
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
			if err := rd.fill(); err != nil {
				return h, nil, err
			}
		}
		payload = (*rd.buf)[rd.r : rd.r+size]
		rd.r += size
	} else {
		payload = make([]byte, size)
		got := copy(payload, rd.buffered())
		rd.r += got
		if _, err := io.ReadFull(rd.c.conn, payload[got:]); err != nil {
			return h, nil, err
		}
	}
	unmask(payload, h.mask)
	return h, payload, nil
}

var errTooBig = &closeError{code: ws.StatusMessageTooBig, reason: "Received too big message"}

// readLoop runs for the life of the connection: it parses frames, answers
// control frames, reassembles fragmented messages and hands complete text
// messages to the protocol layer. It ends with the disconnect path.
func (c *client) readLoop(pending []byte) {
	h := c.h
	defer h.conns.Done()
	rd := &reader{c: c, pending: pending}
	defer func() {
		if rd.buf != nil {
			readBuffers.Put(rd.buf)
			rd.buf = nil
		}
		c.readerExited()
		h.disconnect(c)
	}()

	max := h.opts.MaxPayloadLength
	var fragments []byte // a fragmented message being reassembled
	fragmented := false
	fragmentedBinary := false
	for {
		hdr, payload, err := rd.next(max)
		if err != nil {
			c.readFailed(err)
			return
		}
		now := time.Now().UnixNano()
		c.lastSeen.Store(now)
		switch hdr.op {
		case ws.OpPing:
			c.sendControl(compileFrame(ws.OpPong, payload))
		case ws.OpPong:
		case ws.OpClose:
			code, err := parseClosePayload(payload)
			if err != nil {
				c.readFailed(err)
				return
			}
			c.closeWith(code, "")
			return
		case ws.OpText, ws.OpBinary:
			if fragmented {
				c.readFailed(protocolError("Received new data frame inside a fragmented message"))
				return
			}
			if !hdr.fin {
				fragmented = true
				fragmentedBinary = hdr.op == ws.OpBinary
				fragments = append(fragments[:0], payload...)
				break
			}
			c.lastActivity.Store(now)
			if !c.deliverInbound(payload, hdr.op == ws.OpBinary) {
				return
			}
		case ws.OpContinuation:
			if !fragmented {
				c.readFailed(protocolError("Received continuation frame outside a fragmented message"))
				return
			}
			if len(fragments)+len(payload) > max {
				c.readFailed(errTooBig)
				return
			}
			fragments = append(fragments, payload...)
			if hdr.fin {
				fragmented = false
				c.lastActivity.Store(now)
				if !c.deliverInbound(fragments, fragmentedBinary) {
					return
				}
				fragments = nil
			}
		}
		rd.release()
	}
}

// deliverInbound validates a complete message and hands it on. Binary
// messages are read as text, as the original does (it calls toString() on
// them). A text message must be UTF-8 (RFC 6455 closes with 1007); a binary
// one may hold anything, so one that is not UTF-8 is merely not JSON and
// gets the protocol's error event, as in the original.
func (c *client) deliverInbound(msg []byte, binary bool) bool {
	if c.closing() {
		return true // the server has said goodbye; only the close reply matters
	}
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

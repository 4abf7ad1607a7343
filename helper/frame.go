package helper

import (
	"encoding/binary"
	"errors"
	"unicode/utf8"

	"github.com/fxws/websocket/protocol"
	"github.com/gobwas/ws"
)

// Frames are parsed from and compiled into plain byte slices rather than
// through ws.ReadHeader/ws.WriteFrame: the reader parses straight out of a
// pooled buffer, and an outbound frame is compiled once into one slice that
// every recipient's socket is handed unchanged.

// frameHeader is a parsed frame header.
type frameHeader struct {
	fin    bool
	rsv    byte
	op     ws.OpCode
	masked bool
	mask   [4]byte
	length int64
}

// closeError is a protocol violation that ends the connection with a close
// frame carrying code and reason.
type closeError struct {
	code   ws.StatusCode
	reason string
}

func (e *closeError) Error() string { return "websocket: close " + e.reason }

func protocolError(reason string) error {
	return &closeError{code: ws.StatusProtocolError, reason: reason}
}

var errNeedMore = errors.New("need more bytes")

// parseHeader reads a header from b. It returns errNeedMore when b does not
// yet hold the whole header.
func parseHeader(b []byte) (h frameHeader, n int, err error) {
	if len(b) < 2 {
		return h, 0, errNeedMore
	}
	h.fin = b[0]&0x80 != 0
	h.rsv = (b[0] >> 4) & 0x07
	h.op = ws.OpCode(b[0] & 0x0f)
	h.masked = b[1]&0x80 != 0
	n = 2
	switch l := b[1] & 0x7f; l {
	case 126:
		if len(b) < 4 {
			return h, 0, errNeedMore
		}
		h.length = int64(binary.BigEndian.Uint16(b[2:4]))
		n = 4
	case 127:
		if len(b) < 10 {
			return h, 0, errNeedMore
		}
		u := binary.BigEndian.Uint64(b[2:10])
		if u>>63 != 0 {
			return h, 0, protocolError("invalid frame length")
		}
		h.length = int64(u)
		n = 10
	default:
		h.length = int64(l)
	}
	if h.masked {
		if len(b) < n+4 {
			return h, 0, errNeedMore
		}
		copy(h.mask[:], b[n:n+4])
		n += 4
	}
	return h, n, nil
}

// checkClientHeader applies RFC 6455's rules for frames sent by a client.
// With permessage-deflate negotiated (deflate), RSV1 marks the first frame
// of a compressed message (RFC 7692 §6): it is allowed on text and binary
// frames only.
func checkClientHeader(h frameHeader, deflate bool) error {
	switch {
	case h.rsv&0x4 != 0 && !(deflate && (h.op == ws.OpText || h.op == ws.OpBinary)):
		return protocolError("Received unexpected RSV1 bit")
	case h.rsv&0x3 != 0:
		return protocolError("Received unexpected RSV2 or RSV3 bit")
	}
	if !h.masked {
		return protocolError("Received unmasked frame")
	}
	switch h.op {
	case ws.OpContinuation, ws.OpText, ws.OpBinary:
		return nil
	case ws.OpClose, ws.OpPing, ws.OpPong:
		if !h.fin {
			return protocolError("Received fragmented control frame")
		}
		if h.length > 125 {
			return protocolError("Received too big control frame")
		}
		return nil
	}
	return protocolError("Received invalid opcode")
}

// unmask applies the client's mask to p in place.
func unmask(p []byte, mask [4]byte) {
	ws.Cipher(p, mask, 0)
}

// compileFrame returns a final, unmasked frame of op carrying payload.
func compileFrame(op ws.OpCode, payload []byte) []byte {
	n := len(payload)
	hdr := headerSize(n)
	b := make([]byte, hdr+n)
	putHeader(b[:hdr], op, n)
	copy(b[hdr:], payload)
	return b
}

// headerSize is the length of an unmasked final frame's header for a
// payload of n bytes.
func headerSize(n int) int {
	switch {
	case n < 126:
		return 2
	case n <= 0xffff:
		return 4
	default:
		return 10
	}
}

// putHeader writes into b, headerSize(n) bytes long, the header of an
// unmasked final frame of op with n bytes of payload.
func putHeader(b []byte, op ws.OpCode, n int) {
	b[0] = 0x80 | byte(op)
	switch len(b) {
	case 2:
		b[1] = byte(n)
	case 4:
		b[1] = 126
		binary.BigEndian.PutUint16(b[2:], uint16(n))
	default:
		b[1] = 127
		binary.BigEndian.PutUint64(b[2:], uint64(n))
	}
}

// closeFrame compiles a close frame with code and reason. Reasons are cut to
// fit the 125-byte control payload without splitting a character.
func closeFrame(code ws.StatusCode, reason string) []byte {
	reason = fitCloseReason(reason)
	p := make([]byte, 2+len(reason))
	binary.BigEndian.PutUint16(p, uint16(code))
	copy(p[2:], reason)
	return compileFrame(ws.OpClose, p)
}

// parseClosePayload validates a client's close frame payload and returns the
// code to echo.
func parseClosePayload(p []byte) (ws.StatusCode, error) {
	switch {
	case len(p) == 0:
		return ws.StatusNormalClosure, nil
	case len(p) == 1:
		return 0, protocolError("invalid close payload")
	}
	code := ws.StatusCode(binary.BigEndian.Uint16(p))
	if !validCloseCode(code) {
		return 0, protocolError("invalid close code")
	}
	if !utf8.Valid(p[2:]) {
		return 0, &closeError{code: ws.StatusInvalidFramePayloadData, reason: "invalid UTF-8 in close reason"}
	}
	return code, nil
}

// fitCloseReason cuts reason to what a close frame carries: 123 bytes, on
// a UTF-8 boundary.
func fitCloseReason(reason string) string {
	if len(reason) > 123 {
		reason = reason[:123]
		for !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	return reason
}

// closeReasonOf is the reason in a valid close payload.
func closeReasonOf(p []byte) string {
	if len(p) <= 2 {
		return ""
	}
	return string(p[2:])
}

// validCloseCode reports whether a peer may send code (RFC 6455 7.4).
func validCloseCode(code ws.StatusCode) bool { return protocol.ValidCloseCode(int(code)) }

var (
	pingFrame = compileFrame(ws.OpPing, nil)
)

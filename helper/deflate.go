package helper

import (
	"bytes"
	"compress/flate"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/fxws/websocket/internal/wsdeflate"
	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
)

// permessage-deflate (RFC 7692), as the original negotiates it when its
// perMessageDeflate is on: both directions without context takeover, so a
// message inflates on its own, with a decompressor borrowed for the call
// instead of a 32 KiB window held per connection. Like the original (whose
// sends never ask for compression), the server sends its frames plain
// unless CompressMinSize asks otherwise; then a message is compressed once
// and its compressed frame is shared by every recipient that takes it, as
// the plain one is.

var (
	serverNoContextTakeover = []byte("server_no_context_takeover")
	clientNoContextTakeover = []byte("client_no_context_takeover")
	serverMaxWindowBits     = []byte("server_max_window_bits")
	clientMaxWindowBits     = []byte("client_max_window_bits")
)

// deflateNegotiation picks the first acceptable permessage-deflate offer of
// one upgrade request. Offers with unknown, repeated or invalid parameters
// are declined (RFC 7692 §5), never the connection.
type deflateNegotiation struct {
	accepted bool
	// fullWindow: the client did not limit our window below 32 KiB, which
	// Go's compressor cannot honour; only then do we send it compressed
	// frames.
	fullWindow bool
}

// negotiate is an ws.HTTPUpgrader.Negotiate callback.
func (n *deflateNegotiation) negotiate(offer httphead.Option) (httphead.Option, error) {
	if n.accepted || !bytes.EqualFold(offer.Name, wsflate.ExtensionNameBytes) {
		return httphead.Option{}, nil
	}
	var p wsflate.Parameters
	if !wellFormedOffer(offer) || p.Parse(offer) != nil {
		return httphead.Option{}, nil
	}
	n.accepted = true
	n.fullWindow = !p.ServerMaxWindowBits.Defined() || p.ServerMaxWindowBits == 15
	accept := httphead.Option{Name: wsflate.ExtensionNameBytes}
	accept.Parameters.Set(serverNoContextTakeover, nil)
	accept.Parameters.Set(clientNoContextTakeover, nil)
	if p.ServerMaxWindowBits.Defined() {
		// Accepting an offer that limits our window means echoing the
		// limit (§7.1.2.1); such a client gets plain frames only.
		accept.Parameters.Set(serverMaxWindowBits, strconv.AppendInt(nil, int64(p.ServerMaxWindowBits), 10))
	}
	return accept, nil
}

// wellFormedOffer checks what wsflate.Parameters.Parse lets through: a
// parameter named twice (it misses a repeated valueless
// client_max_window_bits) and window sizes written with a leading zero
// (RFC 7692 §7.1.2: 1*DIGIT without one), or as an empty quoted string.
func wellFormedOffer(offer httphead.Option) bool {
	var seen [4]bool
	ok := true
	offer.Parameters.ForEach(func(key, val []byte) bool {
		i := -1
		switch {
		case bytes.Equal(key, serverNoContextTakeover):
			i = 0
		case bytes.Equal(key, clientNoContextTakeover):
			i = 1
		case bytes.Equal(key, serverMaxWindowBits):
			i = 2
		case bytes.Equal(key, clientMaxWindowBits):
			i = 3
		}
		if i >= 0 {
			ok = !seen[i]
			seen[i] = true
		}
		if len(val) > 1 && val[0] == '0' {
			ok = false
		}
		if val != nil && len(val) == 0 { // client_max_window_bits="": a value, but no digits
			ok = false
		}
		return ok
	})
	return ok
}

// upgraderFor returns the upgrader for one request: with a negotiation of
// its own when the server offers compression, and the request's
// extensions header can be read. gobwas fails the whole upgrade on a
// header it cannot scan; the server declines compression instead, as it
// would with the option off.
func (h *WebSocketServerHelper) upgraderFor(r *http.Request) (ws.HTTPUpgrader, *deflateNegotiation) {
	if !h.opts.PerMessageDeflate {
		return h.upgrader, nil
	}
	for _, v := range r.Header.Values("Sec-WebSocket-Extensions") {
		// httphead reads a header that ends in "=" (a parameter with an
		// empty value, "client_max_window_bits=") as the bare parameter; no
		// valid header ends so.
		if strings.HasSuffix(strings.TrimRight(v, " \t"), "=") ||
			!httphead.ScanOptions([]byte(v), func(int, []byte, []byte, []byte) httphead.Control { return httphead.ControlContinue }) {
			return h.upgrader, nil
		}
	}
	u := h.upgrader
	n := &deflateNegotiation{}
	u.Negotiate = n.negotiate
	return u, n
}

// compressedInput reads a message's payload, then wsdeflate.Tail. It is a
// flate.Reader (it has ReadByte), so the decompressor reads it directly
// instead of wrapping it in a bufio.Reader of its own.
type compressedInput struct {
	p    []byte
	tail int
}

func (in *compressedInput) Read(b []byte) (int, error) {
	if len(in.p) > 0 {
		n := copy(b, in.p)
		in.p = in.p[n:]
		return n, nil
	}
	if in.tail == len(wsdeflate.Tail) {
		return 0, io.EOF
	}
	n := copy(b, wsdeflate.Tail[in.tail:])
	in.tail += n
	return n, nil
}

func (in *compressedInput) ReadByte() (byte, error) {
	if len(in.p) > 0 {
		b := in.p[0]
		in.p = in.p[1:]
		return b, nil
	}
	if in.tail == len(wsdeflate.Tail) {
		return 0, io.EOF
	}
	b := wsdeflate.Tail[in.tail]
	in.tail++
	return b, nil
}

// inflater is a decompressor and its input, pooled: the decompressor holds
// a 32 KiB window and its tables, which no idle connection should keep.
type inflater struct {
	in compressedInput
	fr io.ReadCloser
}

var inflaters = sync.Pool{New: func() any {
	f := &inflater{}
	f.fr = flate.NewReader(&f.in)
	return f
}}

// errBadCompressed closes a connection whose compressed message does not
// inflate, with the original's code and reason.
var errBadCompressed = &closeError{code: ws.StatusInvalidFramePayloadData, reason: "Received invalid compressed data"}

// inflateMessage decompresses a message's payload into a pooled buffer
// (give it back with putFrameBuffer). More than limit bytes out is
// errTooBig, found after at most limit+1 bytes of output whatever the
// ratio; data that is not a deflate stream is errBadCompressed. Buffers
// never grow past the limit's size class: the byte past the limit is
// probed for on its own.
func inflateMessage(payload []byte, limit int) (*[]byte, error) {
	f := inflaters.Get().(*inflater)
	defer func() {
		f.in = compressedInput{} // the pool must not keep the payload alive
		inflaters.Put(f)
	}()
	f.in = compressedInput{p: payload}
	if err := f.fr.(flate.Resetter).Reset(&f.in, nil); err != nil {
		return nil, errBadCompressed
	}
	// JSON usually shrinks 3–10×; start near that and double.
	out := getFrameBuffer(min(limit, max(4*len(payload), readBufferSize)))
	buf := (*out)[:min(cap(*out), limit)]
	fail := func(err error) (*[]byte, error) {
		putFrameBuffer(out)
		return nil, err
	}
	n := 0
	for {
		if n == len(buf) {
			if n == limit {
				var probe [1]byte
				m, err := f.fr.Read(probe[:])
				switch {
				case m > 0:
					return fail(errTooBig)
				case err == io.EOF:
					*out = buf[:n]
					return out, nil
				case err != nil:
					return fail(errBadCompressed)
				}
				continue
			}
			grown := getFrameBuffer(min(2*n, limit))
			copy(*grown, buf[:n])
			putFrameBuffer(out)
			out = grown
			buf = (*out)[:min(cap(*out), limit)]
		}
		m, err := f.fr.Read(buf[n:])
		n += m
		if err == io.EOF {
			*out = buf[:n]
			return out, nil
		}
		if err != nil {
			return fail(errBadCompressed)
		}
	}
}

// compressFrame returns frame (a final, unmasked server frame) compressed
// as a permessage-deflate message without context takeover, at a flate
// level, or nil when compressing does not make it smaller.
func compressFrame(frame []byte, level int) []byte {
	payload := frame[serverHeaderLen(frame):]
	z := wsdeflate.CompressLevel(payload, level)
	if len(z) >= len(payload) {
		return nil
	}
	out := compileFrame(ws.OpCode(frame[0]&0x0f), z)
	out[0] |= 0x40 // RSV1: a compressed message
	return out
}

// serverHeaderLen is the header length of an unmasked frame.
func serverHeaderLen(frame []byte) int {
	switch frame[1] & 0x7f {
	case 126:
		return 4
	case 127:
		return 10
	}
	return 2
}

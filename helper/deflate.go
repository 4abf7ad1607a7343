package helper

import (
	"bytes"
	"compress/flate"
	"io"
	"strconv"
	"sync"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
)

// permessage-deflate (RFC 7692), as the original negotiates it when its
// perMessageDeflate is on: both directions without context takeover, so a
// message inflates on its own, with a decompressor borrowed for the call
// instead of a 32 KiB window held per connection. Like the original (whose
// sends never ask for compression), the server sends its frames plain:
// a fan-out frame stays one byte slice shared by every recipient.

var (
	serverNoContextTakeover = []byte("server_no_context_takeover")
	clientNoContextTakeover = []byte("client_no_context_takeover")
	serverMaxWindowBits     = []byte("server_max_window_bits")
)

// deflateNegotiation picks the first acceptable permessage-deflate offer of
// one upgrade request. Offers with unknown, repeated or invalid parameters
// are declined (RFC 7692 §5), never the connection.
type deflateNegotiation struct {
	accepted bool
}

// negotiate is an ws.HTTPUpgrader.Negotiate callback.
func (n *deflateNegotiation) negotiate(offer httphead.Option) (httphead.Option, error) {
	if n.accepted || !bytes.EqualFold(offer.Name, wsflate.ExtensionNameBytes) {
		return httphead.Option{}, nil
	}
	var p wsflate.Parameters
	if err := p.Parse(offer); err != nil {
		return httphead.Option{}, nil
	}
	n.accepted = true
	accept := httphead.Option{Name: wsflate.ExtensionNameBytes}
	accept.Parameters.Set(serverNoContextTakeover, nil)
	accept.Parameters.Set(clientNoContextTakeover, nil)
	if p.ServerMaxWindowBits.Defined() {
		// Accepting an offer that limits our window means echoing the
		// limit (§7.1.2.1); it costs nothing, since we send plain frames.
		accept.Parameters.Set(serverMaxWindowBits, strconv.AppendInt(nil, int64(p.ServerMaxWindowBits), 10))
	}
	return accept, nil
}

// upgraderFor returns the upgrader for one request: with a negotiation of
// its own when the server offers compression.
func (h *WebSocketServerHelper) upgraderFor() (ws.HTTPUpgrader, *deflateNegotiation) {
	if !h.opts.PerMessageDeflate {
		return h.upgrader, nil
	}
	u := h.upgrader
	n := &deflateNegotiation{}
	u.Negotiate = n.negotiate
	return u, n
}

// deflateTail ends every compressed message: the 4 bytes a sender strips
// (§7.2.2), then an empty final stored block, so that the decompressor
// sees a clean end of stream rather than running out of input.
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// compressedInput reads a message's payload, then deflateTail. It is a
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
	if in.tail == len(deflateTail) {
		return 0, io.EOF
	}
	n := copy(b, deflateTail[in.tail:])
	in.tail += n
	return n, nil
}

func (in *compressedInput) ReadByte() (byte, error) {
	if len(in.p) > 0 {
		b := in.p[0]
		in.p = in.p[1:]
		return b, nil
	}
	if in.tail == len(deflateTail) {
		return 0, io.EOF
	}
	b := deflateTail[in.tail]
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
// errTooBig, found after at most limit+1 bytes of output whatever the ratio;
// data that is not a deflate stream is errBadCompressed.
func inflateMessage(payload []byte, limit int) (*[]byte, error) {
	f := inflaters.Get().(*inflater)
	defer inflaters.Put(f)
	f.in = compressedInput{p: payload}
	if err := f.fr.(flate.Resetter).Reset(&f.in, nil); err != nil {
		return nil, errBadCompressed
	}
	// JSON usually shrinks 3–10×; start near that and double.
	size := min(limit+1, max(4*len(payload), readBufferSize))
	out := getFrameBuffer(size)
	n := 0
	for {
		if n == len(*out) {
			if n > limit {
				putFrameBuffer(out)
				return nil, errTooBig
			}
			grown := getFrameBuffer(min(2*n, limit+1))
			copy(*grown, (*out)[:n])
			putFrameBuffer(out)
			out = grown
		}
		m, err := f.fr.Read((*out)[n:])
		n += m
		if err == io.EOF {
			break
		}
		if err != nil {
			putFrameBuffer(out)
			return nil, errBadCompressed
		}
	}
	if n > limit {
		putFrameBuffer(out)
		return nil, errTooBig
	}
	*out = (*out)[:n]
	return out, nil
}

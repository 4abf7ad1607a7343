//go:build linux && !386

package helper

import (
	"slices"
	"testing"

	"github.com/gobwas/ws"
)

// Pongs stop at the backpressure limit (plus one): each ping a client sends
// asks for one, and control frames are otherwise let past the limit, so a
// client that pings without reading would have them queued without end.
func TestPongsStopAtTheBackpressureLimit(t *testing.T) {
	h := bareHelper()
	defer h.flush.close()
	c, peer := rawPair(t, h) // the peer reads nothing
	defer peer.Close()
	defer c.conn.Close()
	pong := compileFrame(ws.OpPong, make([]byte, 125))
	limit := h.opts.BackpressureLimit
	most := 0
	for range (16*limit + 8<<20) / len(pong) { // past the limit and the socket's buffers
		c.sendControl(pong)
		c.out.mu.Lock()
		most = max(most, c.out.queued)
		c.out.mu.Unlock()
	}
	if most > limit+len(pong) {
		t.Fatalf("%d bytes of pongs queued for a peer that reads nothing; BackpressureLimit is %d", most, limit)
	}
}

// hasCloseFrame walks client frames from a boundary: a close frame after
// data frames counts; one cut short, or bytes that are not frames, do not.
func TestHasCloseFrame(t *testing.T) {
	text := func(p string) []byte {
		f := ws.NewTextFrame([]byte(p))
		f.Header.Masked, f.Header.Mask = true, [4]byte{1, 2, 3, 4}
		b, _ := ws.CompileFrame(f)
		return b
	}
	closeFrame := func() []byte {
		f := ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
		f.Header.Masked, f.Header.Mask = true, [4]byte{1, 2, 3, 4}
		b, _ := ws.CompileFrame(f)
		return b
	}
	big := text(string(make([]byte, 70000))) // a 64-bit length
	cases := []struct {
		name string
		b    []byte
		want bool
	}{
		{"nothing", nil, false},
		{"close", closeFrame(), true},
		{"data, then close", slices.Concat(text("a"), big, text("b"), closeFrame()), true},
		{"data only", slices.Concat(text("a"), text("b")), false},
		{"close cut short", closeFrame()[:3], false},
		{"data cut short, no close", slices.Concat(text("a"), big[:1000]), false},
		{"not frames", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, false},
	}
	for _, tc := range cases {
		if got := hasCloseFrame(tc.b); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

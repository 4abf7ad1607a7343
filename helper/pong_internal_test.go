//go:build linux && !386

package helper

import (
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

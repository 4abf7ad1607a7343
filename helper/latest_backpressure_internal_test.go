//go:build linux && !386

package helper

import (
	"bufio"
	"io"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"go.uber.org/zap"
)

// A newer frame of a key that the backpressure limit then drops must not
// have taken the waiting frame of its key out first: the client would get
// neither, and be left with a value older than both (README: "none is
// lost"; protocol.Latest: "gets this one in its turn").
func TestLatestDroppedByBackpressureKeepsTheWaitingFrame(t *testing.T) {
	opts := Options{BackpressureLimit: 95}.withDefaults()
	h := &WebSocketServerHelper{opts: opts, log: zap.NewNop(), flush: newFlusher()}
	c, peer := rawPair(t, h)
	defer peer.Close()
	defer c.conn.Close()

	a1 := compileFrame(ws.OpText, []byte("a1")) // 4 bytes
	plain := compileFrame(ws.OpText, make([]byte, 80))
	a2 := compileFrame(ws.OpText, []byte("a2-a-larger-value")) // 19 bytes
	// Fan-out frames wait for the flusher, which is not started yet.
	if r := c.push(a1, false, true, "a"); r != sent {
		t.Fatal(r)
	}
	if r := c.push(plain, false, true, ""); r != sent {
		t.Fatal(r)
	}
	r := c.push(a2, false, true, "a")
	c.out.mu.Lock()
	n := len(c.out.queue)
	c.out.mu.Unlock()
	t.Logf("a2: result %v, queue %d frames, superseded %d", r, n, h.stats.superseded.Load())

	h.flush.start()
	defer h.flush.close()
	_ = peer.SetReadDeadline(time.Now().Add(time.Second))
	br := bufio.NewReader(peer)
	var gotA []string
	for {
		hdr, err := ws.ReadHeader(br)
		if err != nil {
			break
		}
		p := make([]byte, hdr.Length)
		if _, err := io.ReadFull(br, p); err != nil {
			t.Fatal(err)
		}
		if len(p) < 80 {
			gotA = append(gotA, string(p))
		}
	}
	if len(gotA) == 0 {
		t.Fatalf("the client got no value of key a: a1 was taken out (superseded %d) and a2 dropped (result %v)",
			h.stats.superseded.Load(), r)
	}
}

//go:build linux && !386

package helper

import (
	"testing"

	"github.com/gobwas/ws"
	"go.uber.org/zap"
)

// Latest values may keep a client's queue between BackpressureLimit and
// twice it for as long as the stream runs (a slow link on a ticker): a
// pong (or the idle sweep's ping) refused all that while, as control
// frames are once the queue is over the limit, would end a device whose
// stack pings and expects pongs while it reads. Control frames get the
// allowance the queue was given (found in review).
func TestPongNotStarvedByLatestAllowance(t *testing.T) {
	opts := Options{BackpressureLimit: 100}.withDefaults()
	h := &WebSocketServerHelper{opts: opts, log: zap.NewNop(), flush: newFlusher()}
	c, peer := rawPair(t, h)
	defer peer.Close()
	defer c.conn.Close()

	plain := compileFrame(ws.OpText, make([]byte, 58)) // 60 bytes
	tick := compileFrame(ws.OpText, make([]byte, 58))
	// Fan-out frames wait for the flusher, which is not started: the queue.
	if r := c.push(plain, false, true, ""); r != sent {
		t.Fatal(r)
	}
	if r := c.push(tick, false, true, "price:X"); r != sent {
		t.Fatalf("latest value: %v (the allowance should take it to 120 of 200)", r)
	}
	pong := compileFrame(ws.OpPong, nil)
	if r := c.push(pong, true, false, ""); r != sent {
		t.Fatalf("pong: %v with %d bytes of latest-allowed queue (limit %d, allowance %d)", r, c.out.queued, opts.BackpressureLimit, 2*opts.BackpressureLimit)
	}
}

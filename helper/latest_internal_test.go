//go:build linux && !386

package helper

import (
	"bufio"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"go.uber.org/zap"
)

// A frame with a latest key takes the waiting frame of its key out of the
// queue and goes behind what was queued before it; frames without a key,
// and other keys, are untouched.
func TestLatestReplacesTheWaitingFrameOfItsKey(t *testing.T) {
	h := &WebSocketServerHelper{opts: Options{}.withDefaults(), log: zap.NewNop(), flush: newFlusher()}
	c, peer := rawPair(t, h)
	defer peer.Close()
	defer c.conn.Close()

	// Fan-out frames wait for the flusher, which is not started yet.
	for _, f := range []struct{ payload, key string }{
		{"a1", "a"}, {"plain1", ""}, {"b1", "b"}, {"a2", "a"}, {"b2", "b"}, {"plain2", ""}, {"a3", "a"},
	} {
		if r := c.push(compileFrame(ws.OpText, []byte(f.payload)), false, true, f.key); r != sent {
			t.Fatal(r)
		}
	}
	c.out.mu.Lock()
	queued, n, keys := c.out.queued, len(c.out.queue), slices.Clone(c.out.pooled.keys)
	c.out.mu.Unlock()
	if want := []string{"", "b", "", "a"}; n != 4 || !slices.Equal(keys, want) {
		t.Fatalf("queue of %d frames with keys %q, want 4 with %q", n, keys, want)
	}
	if want := 4*2 + len("plain1") + len("b2") + len("plain2") + len("a3"); queued != want {
		t.Fatalf("queued %d bytes, want %d", queued, want)
	}
	if got := h.stats.superseded.Load(); got != 3 {
		t.Fatalf("superseded %d, want 3", got)
	}
	h.flush.start()
	defer h.flush.close()
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(peer)
	var got []string
	for range 4 {
		hdr, err := ws.ReadHeader(br)
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		p := make([]byte, hdr.Length)
		if _, err := io.ReadFull(br, p); err != nil {
			t.Fatal(err)
		}
		got = append(got, string(p))
	}
	if want := []string{"plain1", "b2", "plain2", "a3"}; !slices.Equal(got, want) {
		t.Fatalf("the peer got %q, want %q", got, want)
	}
	c.out.mu.Lock()
	defer c.out.mu.Unlock()
	if c.out.keyed || c.out.pooled != nil || c.out.queue != nil {
		t.Fatalf("drained, the client still holds a queue of %d (keyed %v)", len(c.out.queue), c.out.keyed)
	}
}

// While a writer owns the socket, the head of the queue may be the rest of
// a frame partly written: it is never taken out, whatever its key.
func TestLatestLeavesAFrameBeingWritten(t *testing.T) {
	var o outbound
	o.appendFrame([]byte("rest-of-a1"), "a")
	o.appendFrame([]byte("b1"), "b")
	o.queued = len("rest-of-a1") + len("b1")
	o.writing = true
	dropLatest := func(key string) bool {
		i := o.latestIndexLocked(key)
		if i >= 0 {
			o.dropAtLocked(i)
		}
		return i >= 0
	}
	if dropLatest("a") {
		t.Fatal("the head of a queue being written was taken out")
	}
	if !dropLatest("b") || len(o.queue) != 1 || string(o.queue[0]) != "rest-of-a1" || o.queued != len("rest-of-a1") {
		t.Fatalf("after dropping b: queue %q, %d bytes", o.queue, o.queued)
	}
	o.writing = false
	if !dropLatest("a") || len(o.queue) != 0 || o.queued != 0 {
		t.Fatalf("with no writer: queue %q, %d bytes", o.queue, o.queued)
	}
}

package redisbroker

import (
	"strings"
	"testing"
)

// The workers' queues hold at most QueueBytes of payload together; past
// it messages are dropped and counted, yet one message alone always fits.
func TestQueueBytesBound(t *testing.T) {
	b := New(nil, Options{QueueBytes: 1000, Workers: 1})
	b.queues = []chan delivery{make(chan delivery, 100)}
	msg := strings.Repeat("x", 300)
	for i := 0; i < 10; i++ {
		b.dispatch("ws:broadcast", msg)
	}
	if got := len(b.queues[0]); got != 3 {
		t.Errorf("%d messages queued, want 3 (900 of 1000 bytes)", got)
	}
	if st := b.Stats(); st.Dropped != 7 || st.Received != 10 || b.Dropped() != 7 {
		t.Errorf("stats %+v (Dropped() %d), want 7 dropped of 10 received", st, b.Dropped())
	}
	// Drained, the room comes back.
	for len(b.queues[0]) > 0 {
		d := <-b.queues[0]
		b.queuedBytes.Add(-int64(len(d.payload)))
	}
	big := strings.Repeat("y", 5000)
	b.dispatch("ws:broadcast", big)
	if got := len(b.queues[0]); got != 1 {
		t.Errorf("a message larger than QueueBytes into empty queues: %d queued, want 1", got)
	}
	b.dispatch("ws:broadcast", "z")
	if got := len(b.queues[0]); got != 1 {
		t.Errorf("behind it, %d queued, want still 1", got)
	}
}

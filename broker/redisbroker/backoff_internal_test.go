package redisbroker

import (
	"testing"
	"time"
)

// A Redis that keeps cutting the subscription moments after each
// reconnect (client-output-buffer-limit pubsub while the instance falls
// behind; found in a chaos trial: 29 cuts in 8 s) is not answered with a
// reconnect every ReconnectBackoffMin: the backoff grows on over sessions
// shorter than stableSession, up to ReconnectBackoffMax, and starts again
// from ReconnectBackoffMin after one that lasted.
func TestBackoffGrowsOverShortSessions(t *testing.T) {
	b := New(nil, Options{ReconnectBackoffMin: 100 * time.Millisecond, ReconnectBackoffMax: time.Second})
	step := b.firstBackoff(0, time.Hour) // the first loss
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if step != w*time.Millisecond {
			t.Fatalf("loss %d after a session of 50 ms: step %v, want %v", i+1, step, w*time.Millisecond)
		}
		step = b.firstBackoff(step, 50*time.Millisecond)
	}
	if got := b.firstBackoff(time.Second, stableSession); got != 100*time.Millisecond {
		t.Fatalf("after a session of %v: step %v, want ReconnectBackoffMin", stableSession, got)
	}
	if got := b.firstBackoff(400*time.Millisecond, stableSession-time.Millisecond); got != 800*time.Millisecond {
		t.Fatalf("after a session just short of %v: step %v, want it doubled", stableSession, got)
	}
}

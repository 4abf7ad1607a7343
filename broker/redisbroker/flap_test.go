package redisbroker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fxws/websocket/broker/redisbroker"
	"github.com/fxws/websocket/internal/redistest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// An instance that falls behind its subscription is disconnected by Redis
// (client-output-buffer-limit pubsub) and, while the load lasts, again
// after each reconnect. The README promises that log lines a fault repeats
// come at most once a second each, with the count held back; "redis
// subscription lost" and "restored" came once per loss (found in a chaos
// trial: a sustained 100 KB stream, 29 losses in 8 s, up to 15 lines a
// second from one instance). Now each comes once a second at most, with
// "suppressed", and the loss says that Redis closed the connection and
// names client-output-buffer-limit pubsub. The backoff is kept short here
// so that Redis cuts the subscription many times; its growth over short
// sessions is TestBackoffGrowsOverShortSessions's.
func TestRepeatedSubscriptionLossIsLoggedAtMostOnceASecond(t *testing.T) {
	srv := redistest.Start(t)
	admin := srv.Client()
	ctx := context.Background()
	if err := admin.ConfigSet(ctx, "client-output-buffer-limit", "pubsub 64kb 32kb 1").Err(); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	start := time.Now()
	b, _ := startBroker(t, srv.Client(), redisbroker.Options{Logger: zap.New(core),
		ReconnectBackoffMin: 5 * time.Millisecond, ReconnectBackoffMax: 20 * time.Millisecond})
	if err := b.Subscribe(ctx, "ws:room:big"); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("y", 200<<10) // past the 64 KB hard limit: each one cuts the subscriber
	for time.Since(start) < 3*time.Second {
		for range 5 {
			_ = admin.Publish(ctx, "ws:room:big", big).Err()
		}
		time.Sleep(20 * time.Millisecond)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !b.Stats().Connected && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	elapsed := time.Since(start)
	st := b.Stats()
	if !st.Connected || st.Reconnects < 6 {
		t.Fatalf("Redis cut the subscription %d times in %v (connected %v); the test needs it cut repeatedly, then restored", st.Reconnects, elapsed, st.Connected)
	}
	lost := logs.FilterMessage("redis subscription lost; reconnecting").All()
	restored := logs.FilterMessage("redis subscription restored").All()
	most := int(elapsed/time.Second) + 1
	if len(lost) > most || len(restored) > most {
		t.Fatalf("subscription cut %d times in %v: %d \"subscription lost\" and %d \"restored\" lines, want at most %d each (once a second)",
			st.Reconnects, elapsed.Round(time.Millisecond), len(lost), len(restored), most)
	}
	var held uint64
	for _, l := range lost {
		held += l.ContextMap()["suppressed"].(uint64)
	}
	if len(lost) == 0 || held == 0 || uint64(len(lost))+held > st.Reconnects+1 {
		t.Fatalf("%d losses: %d lines with %d suppressed in all, want the count held back (and no more than the losses)", st.Reconnects, len(lost), held)
	}
	hint, _ := lost[0].ContextMap()["hint"].(string)
	if !strings.Contains(hint, "client-output-buffer-limit pubsub") {
		t.Fatalf("a subscription Redis closed is logged without the hint at client-output-buffer-limit pubsub: %v", lost[0].ContextMap())
	}
}

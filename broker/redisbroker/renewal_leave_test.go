package redisbroker_test

// From a review of leaveGone (unsubscribes given up while a reconnect or a
// renewal holds the turn).

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/broker/redisbroker"
	"github.com/fxws/websocket/internal/redistest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// An unsubscribe that gives up while a renewal holds the turn is taken off
// the set and said to be kept. When the renewal then fails before the old
// session has read a marker, the old session stays live, as it was; it
// leaves the channel too (it stayed subscribed, with no later session
// coming to leave it out; found in review).
func TestUnsubscribeDuringAFailedRenewalLeavesTheLiveSession(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	admin := srv.Client()
	defer admin.Close()
	core, logs := observer.New(zapcore.WarnLevel)
	at, release := make(chan struct{}, 1), make(chan struct{})
	var once atomic.Bool
	b, _ := startRenewing(t, srv.Client(), redisbroker.Options{PingTimeout: 300 * time.Millisecond, Logger: zap.New(core)}, func(*redisbroker.Broker) {
		if once.CompareAndSwap(false, true) {
			at <- struct{}{}
			<-release
		}
	})
	const gone, kept = "ws:room:gone", "ws:room:kept"
	if err := b.Subscribe(ctx, gone, kept); err != nil {
		t.Fatal(err)
	}
	// A crowd comes and goes: a renewal starts and holds the turn.
	go func() { _ = crowd(t, b, "ws:client:crowd-", 256, 256) }()
	select {
	case <-at:
	case <-time.After(10 * time.Second):
		t.Fatal("no renewal")
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err := b.Unsubscribe(short, gone)
	cancel()
	if !errors.Is(err, broker.ErrChangeKept) {
		t.Fatalf("Unsubscribe while a renewal holds the turn: %v, want it kept", err)
	}
	// The renewal fails before its marker goes out (no check slot for it
	// within PingTimeout): the old session is left as it was.
	checks := make(chan struct{})
	redisbroker.FillChecks(b, checks)
	close(release)
	waitFor(t, "the renewal to fail", func() bool { return logs.FilterMessage("subscription renewal failed").Len() > 0 })
	close(checks)
	if st := b.Stats(); st.Renewals != 0 || st.Sessions != 1 {
		t.Fatalf("stats %+v: want the first session still live", st)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		n, err := admin.PubSubNumSub(ctx, gone, kept).Result()
		if err == nil && n[gone] == 0 && n[kept] == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscribers after the failed renewal: %v (%v), want %s 0 and %s 1; the broker holds %v",
				n, err, gone, kept, b.Channels())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

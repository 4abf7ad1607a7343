package redisbroker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/broker/redisbroker"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/internal/redisinstance"
	"github.com/fxws/websocket/internal/redistest"
	"github.com/fxws/websocket/protocol"
)

// Unsubscribes that time out waiting for the broker's turn (held by a
// reconnect or a renewal subscribing a large or slow session) are taken
// off its set and said to be kept. They were left in the set, and the
// helper, which drops what it retries past 1024, left the channels
// subscribed by every later session with no local audience (found in
// review).
func TestUnsubscribesWhileAReconnectHoldsTheTurnAreKept(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a := redisinstance.Start(t, srv.Client(noRetries), outageOpts(), func(cfg *helper.Config) {
		cfg.Options.Limits.MaxRoomsPerClient = 4096
	})
	_, id := a.Connect(t, "carol")
	const n = 1100
	room := func(i int) string { return fmt.Sprintf("leak-%d", i) }
	for i := range n {
		if !a.Helper.JoinRoom(id, room(i)) {
			t.Fatalf("join %d failed", i)
		}
	}
	if err := a.Helper.SyncSubscriptions(ctx); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(a.Broker.Channels(), protocol.RoomChannel(room(0))) {
		t.Fatal("setup: room not subscribed")
	}

	// A reconnect/renewal holds the op lock for a while (simulated).
	release := redisbroker.HoldOp(a.Broker)
	for i := range n {
		a.Helper.LeaveRoom(id, room(i))
	}
	// The first leave starts an apply alone (it fails after 5 s waiting
	// for the lock); the next apply sends the other 1099 in 3 batches,
	// each waiting 5 s; then the helper holds > 1024 retried unsubscribes.
	time.Sleep(21 * time.Second)
	release()

	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	time.Sleep(2 * time.Second) // a retry at 1 s, had anything been kept
	if err := a.Helper.SyncSubscriptions(sctx); err != nil {
		t.Fatal(err)
	}
	held := 0
	for _, ch := range a.Broker.Channels() {
		for i := range n {
			if ch == protocol.RoomChannel(room(i)) {
				held++
				break
			}
		}
	}
	if held > 0 {
		nums, _ := srv.Client().PubSubNumSub(ctx, protocol.RoomChannel(room(0))).Result()
		t.Fatalf("%d of %d rooms nobody is in are still held by the broker (Redis subscribers of %s: %d): the dropped unsubscribes were never applied",
			held, n, room(0), nums[protocol.RoomChannel(room(0))])
	}
}

// An unsubscribe that gives up while a reconnect holds the turn, after
// the reconnect has taken its set of channels, is left out of the new
// session too: the reconnect unsubscribes what left the set meanwhile.
func TestUnsubscribeDuringAReconnectLeavesTheNewSession(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	rc := srv.Client()
	defer rc.Close()
	admin := srv.Client()
	defer admin.Close()
	b := redisbroker.New(rc, redisbroker.Options{ReconnectBackoffMin: 10 * time.Millisecond})
	snapped, release := make(chan struct{}, 1), make(chan struct{})
	var armed atomic.Bool
	redisbroker.SetAfterSnapshot(b, func() {
		if armed.CompareAndSwap(true, false) {
			snapped <- struct{}{}
			<-release
		}
	})
	if err := b.Start(ctx, func(string, []byte) {}); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const left, kept = "ws:room:left", "ws:room:kept"
	if err := b.Subscribe(ctx, left, kept); err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	if err := admin.ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-snapped:
	case <-time.After(10 * time.Second):
		t.Fatal("no reconnect")
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err := b.Unsubscribe(short, left)
	cancel()
	if !errors.Is(err, broker.ErrChangeKept) {
		t.Fatalf("Unsubscribe while a reconnect holds the turn: %v, want it kept", err)
	}
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := admin.PubSubNumSub(ctx, left, kept).Result()
		if err == nil && n[left] == 0 && n[kept] == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscribers after the reconnect: %v (%v), want %s 0 and %s 1", n, err, left, kept)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

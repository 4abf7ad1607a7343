package redisbroker_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/fxws/websocket/broker/redisbroker"
	"github.com/fxws/websocket/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// countUntil counts the messages on ch other than "marker" until marker
// arrives, which the caller publishes after what it counts: one channel's
// messages arrive in order.
func countUntil(t *testing.T, ps *redis.PubSub, publish func()) int {
	t.Helper()
	publish()
	n := 0
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		msg, err := ps.ReceiveMessage(ctx)
		if err != nil {
			t.Fatalf("waiting for the marker: %v (%d counted)", err, n)
		}
		if msg.Payload == "marker" {
			return n
		}
		n++
	}
}

// Broker.Publish through a connection cut after Redis executed the PUBLISH
// (its reply lost) returned nil and the message was delivered twice:
// go-redis retries the command by itself (MaxRetries, 3 by default) on a
// fresh connection (found in a chaos trial: 60 duplicate deliveries of
// instance sends in 4 s with 20 cuts, all reported OK). Now it is not sent
// again, whatever the client's MaxRetries: delivered once, and the error
// returned, as its fate is unknown to the broker.
func TestBrokerPublishWhoseReplyIsLostIsNotDeliveredTwice(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	admin := srv.Client()
	sub := srv.Client().Subscribe(ctx, "ws:room:r")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}

	p := redistest.NewReplyCutter(t, srv.Addr())
	rdb := redis.NewClient(&redis.Options{Addr: p.Addr()}) // go-redis defaults: MaxRetries 3
	t.Cleanup(func() { _ = rdb.Close() })
	pub, _ := startBroker(t, rdb, redisbroker.Options{ProbeInterval: time.Minute})
	var err error
	got := countUntil(t, sub, func() {
		p.Arm()
		err = pub.Publish(ctx, "ws:room:r", []byte(`{"serverId":"x","type":"room","target":"r","event":"m","data":1}`))
		if p.Armed() {
			t.Fatal("the cutter never saw the publish's reply")
		}
		admin.Publish(ctx, "ws:room:r", "marker")
	})
	if got != 1 || err == nil {
		t.Fatalf("one Publish whose reply was lost: delivered %d times, returned %v; want once, and an error", got, err)
	}
	t.Logf("publish: %v; delivered once", err)

	// Publishes in flight together share a pipeline, whose replies are
	// lost together: none is sent twice either.
	const many = 50
	errs := make([]error, many)
	seen := make(map[string]int)
	publish := func() {
		p.Arm()
		var wg sync.WaitGroup
		for i := range many {
			wg.Go(func() {
				errs[i] = pub.Publish(ctx, "ws:room:r", []byte(`{"serverId":"x","type":"room","target":"r","event":"m","data":`+strconv.Itoa(100+i)+`}`))
			})
		}
		wg.Wait()
		p.Disarm()
		admin.Publish(ctx, "ws:room:r", "marker")
	}
	publish()
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	defer rcancel()
	for {
		msg, err := sub.ReceiveMessage(rctx)
		if err != nil {
			t.Fatal(err)
		}
		if msg.Payload == "marker" {
			break
		}
		seen[msg.Payload]++
	}
	failed := 0
	for i := range many {
		n := seen[`{"serverId":"x","type":"room","target":"r","event":"m","data":`+strconv.Itoa(100+i)+`}`]
		if n > 1 || errs[i] == nil && n != 1 {
			t.Fatalf("publish %d (of %d at once, their replies cut): delivered %d times, returned %v", i, many, n, errs[i])
		}
		if errs[i] != nil {
			failed++
		}
	}
	t.Logf("%d publishes at once, replies cut: %d failed, none delivered twice", many, failed)

	// The next goes through as usual.
	got = countUntil(t, sub, func() {
		if err := pub.Publish(ctx, "ws:room:r", []byte(`{"serverId":"x","type":"room","target":"r","event":"m","data":2}`)); err != nil {
			t.Fatal(err)
		}
		admin.Publish(ctx, "ws:room:r", "marker")
	})
	if got != 1 {
		t.Fatalf("the next publish delivered %d times, want 1", got)
	}
}

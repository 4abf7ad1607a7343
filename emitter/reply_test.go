package emitter_test

import (
	"context"
	"testing"
	"time"

	"github.com/fxws/websocket/emitter"
	"github.com/fxws/websocket/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// A PUBLISH whose reply is lost on the way back (the connection cut after
// Redis executed it) was sent again by go-redis's own retry (MaxRetries, 3
// by default), on a fresh connection: the send returned nil, and every
// receiver got the message twice (found in a chaos trial: 20 such cuts in
// 4 s, 200 + 80 + 6 duplicate deliveries of emitter sends, all reported
// sent once and OK). Now it is not sent again, whatever the client's
// MaxRetries: delivered once, and the send returns the error, as its fate
// is unknown to the emitter. PUBLISH is not idempotent.
func TestPublishWhoseReplyIsLostIsNotDeliveredTwice(t *testing.T) {
	srv := redistest.Start(t)
	p := redistest.NewReplyCutter(t, srv.Addr())
	ctx := context.Background()
	admin := srv.Client()
	defer admin.Close()

	sub := srv.Client().Subscribe(ctx, "ws:room:r")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: p.Addr()}) // go-redis defaults: MaxRetries 3
	defer rdb.Close()
	e, err := emitter.New(rdb, emitter.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	count := func(send func() error) (int, error) {
		t.Helper()
		p.Arm()
		err := send()
		p.Disarm()
		admin.Publish(ctx, "ws:room:r", "marker") // after it: one channel's messages arrive in order
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		n := 0
		for {
			msg, rerr := sub.ReceiveMessage(rctx)
			if rerr != nil {
				t.Fatalf("waiting for the marker: %v (%d counted)", rerr, n)
			}
			if msg.Payload == "marker" {
				return n, err
			}
			n++
		}
	}
	got, sendErr := count(func() error { return e.ToRoom(ctx, "r", "m", 1) })
	if got != 1 || sendErr == nil {
		t.Fatalf("one send whose reply was lost: delivered %d times, returned %v; want once, and an error", got, sendErr)
	}
	t.Logf("send: %v; delivered once", sendErr)
	if got, err := count(func() error { _, err := e.Publish(ctx, "room", "r", "m", 2); return err }); got != 1 || err == nil {
		t.Fatalf("Publish whose reply was lost: delivered %d times, returned %v; want once, and an error", got, err)
	}
	if st := e.Stats(); st.PublishErrors != 2 || st.Published != 0 {
		t.Fatalf("stats %+v, want 2 publish errors", st)
	}
}

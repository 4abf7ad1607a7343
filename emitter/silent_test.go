package emitter_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/fxws/websocket/emitter"
	"github.com/fxws/websocket/internal/blackhole"
	"github.com/redis/go-redis/v9"
)

// PublishTimeout and ReadyTimeout hold against a Redis that stopped
// answering, with a client made the default way: go-redis alone would wait
// out its ReadTimeout (3 s here, for ever with -1).
func TestTimeoutsHoldWhenRedisIsSilent(t *testing.T) {
	for _, readTimeout := range []time.Duration{0, -1} {
		rdb := redis.NewClient(&redis.Options{Addr: blackhole.New(t).Addr(), MaxRetries: -1, ReadTimeout: readTimeout})
		t.Cleanup(func() { rdb.Close() })
		e, err := emitter.New(rdb, emitter.Options{PublishTimeout: 200 * time.Millisecond, ReadyTimeout: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err = e.Broadcast(context.Background(), "tick", 1)
		if d := time.Since(start); d > time.Second || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("ReadTimeout %v: publish with PublishTimeout 200ms took %v: %v", readTimeout, d.Round(time.Millisecond), err)
		}
		start = time.Now()
		err = e.Start(context.Background())
		if d := time.Since(start); d > time.Second || err == nil {
			t.Fatalf("ReadTimeout %v: Start with ReadyTimeout 300ms took %v: %v", readTimeout, d.Round(time.Millisecond), err)
		}
	}
}

package redisbroker

import (
	"context"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// A Publish that passes the closed check just before Close, and starts the
// publisher just after Close looked for it, must not leave the publisher
// running (goleak would see it) nor hang.
func TestPublishRacingCloseLeavesNoPublisher(t *testing.T) {
	// No server: the race does not depend on the publish succeeding.
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	defer rc.Close()
	for i := 0; i < 3000; i++ {
		b := New(rc, Options{})
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_ = b.Publish(context.Background(), "ws:room:x", []byte("x"))
		}()
		close(start)
		_ = b.Close()
		wg.Wait()
		if b.pubStarted.Load() {
			select {
			case <-b.pubDone:
			default:
				t.Fatalf("run %d: a Publish racing Close left the publisher running", i)
			}
		}
	}
}

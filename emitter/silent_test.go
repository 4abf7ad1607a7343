package emitter_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/fxws/websocket/emitter"
	"github.com/redis/go-redis/v9"
)

// silentRedis accepts connections and never answers, as a Redis behind a
// partition does; it returns the address.
func silentRedis(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}

// PublishTimeout and ReadyTimeout hold against a Redis that stopped
// answering, with a client made the default way: go-redis alone would wait
// out its ReadTimeout (3 s here, for ever with -1).
func TestTimeoutsHoldWhenRedisIsSilent(t *testing.T) {
	for _, readTimeout := range []time.Duration{0, -1} {
		rdb := redis.NewClient(&redis.Options{Addr: silentRedis(t), MaxRetries: -1, ReadTimeout: readTimeout})
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

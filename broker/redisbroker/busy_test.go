package redisbroker_test

import (
	"context"
	"testing"
	"time"

	"github.com/fxws/websocket/broker/redisbroker"
	"github.com/fxws/websocket/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// BUSY (a long Lua script or function, past busy-reply-threshold) is an
// answer a wait changes: Start waits it out, as for a Redis still loading
// (found in review: a first version of the fail-at-once rule gave up).
func TestStartWaitsOutABusyScript(t *testing.T) {
	srv := redistest.Start(t)
	admin := srv.Client()
	defer admin.Close()
	ctx := context.Background()
	if err := admin.ConfigSet(ctx, "busy-reply-threshold", "50").Err(); err != nil {
		t.Fatal(err)
	}
	script := srv.Client()
	defer script.Close()
	go func() {
		_ = script.Eval(ctx, "local t = redis.call('TIME')[1] + 0 while redis.call('TIME')[1] + 0 < t + 2 do end return 1", nil).Err()
	}()
	time.Sleep(300 * time.Millisecond) // the script is running, over the threshold
	if err := admin.Ping(ctx).Err(); err == nil || !redis.HasErrorPrefix(err, "BUSY") {
		t.Skipf("Redis does not answer BUSY to PING here: %v", err)
	}
	rdb := srv.Client()
	defer rdb.Close()
	b := redisbroker.New(rdb, redisbroker.Options{})
	defer b.Close()
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := b.Start(sctx, func(string, []byte) {}); err != nil {
		t.Fatalf("Start during a 2 s script: %v; want it to wait the script out", err)
	}
}

// A Lua script running past busy-reply-threshold makes Redis answer BUSY
// to everything, the probe's loopback PUBLISH and its PING on the
// subscription connection included. That answer proves the connection
// alive, and the session is kept (found in a chaos trial): it was taken
// for a dead connection, and what other instances and emitters published
// in the moments after SCRIPT KILL, before a new session was subscribed,
// was lost (a 3 s script with 400 clients: the last lost send 0.24 s
// after SCRIPT KILL).
func TestBusyScriptKeepsTheLiveSubscription(t *testing.T) {
	srv := redistest.Start(t)
	admin := srv.Client()
	ctx := context.Background()
	if err := admin.ConfigSet(ctx, "busy-reply-threshold", "50").Err(); err != nil {
		t.Fatal(err)
	}
	b, in := startBroker(t, srv.Client(), redisbroker.Options{ProbeInterval: 100 * time.Millisecond, PingTimeout: 3 * time.Second})
	if err := b.Subscribe(ctx, "ws:room:a"); err != nil {
		t.Fatal(err)
	}
	if err := admin.Publish(ctx, "ws:room:a", "before").Err(); err != nil {
		t.Fatal(err)
	}
	in.wait(t, "ws:room:a|before")

	script := srv.Client()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = script.Eval(ctx, "local t = redis.call('TIME')[1] + 0 while redis.call('TIME')[1] + 0 < t + 30 do end return 1", nil).Err()
	}()
	time.Sleep(300 * time.Millisecond)
	if err := admin.Ping(ctx).Err(); err == nil || !redis.HasErrorPrefix(err, "BUSY") {
		t.Skipf("Redis does not answer BUSY to PING here: %v", err)
	}
	// Several probes while BUSY (ProbeInterval 100 ms). PingTimeout is
	// long, so that a slow machine does not fail a probe after the script.
	time.Sleep(2500 * time.Millisecond)
	if err := admin.Do(ctx, "SCRIPT", "KILL").Err(); err != nil {
		t.Fatal(err)
	}
	<-done
	// Published right after the script ends: the subscription that was
	// alive all along is there to hear it.
	n, err := admin.Publish(ctx, "ws:room:a", "after").Result()
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("the message published right after SCRIPT KILL reached %d subscribers, want 1 (the broker's): %+v", n, b.Stats())
	}
	in.wait(t, "ws:room:a|after")
	if st := b.Stats(); st.Sessions != 1 || st.Reconnects != 0 || st.ProbeFailures != 0 || !st.Connected {
		t.Fatalf("a BUSY Redis (it answered) was taken for a dead subscription: %+v", st)
	}
}

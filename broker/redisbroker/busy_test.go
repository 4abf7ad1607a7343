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

package websocket_test

import (
	"context"
	"testing"
	"time"

	websocket "github.com/fxws/websocket"
	"github.com/fxws/websocket/broker/redisbroker"
	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// A server in ModeSharded started while the master owning ws:broadcast's
// slot is down (a failover under way, a rolling deploy meeting a node
// restart) waits for the replica's takeover (seconds) within its start
// timeout, as one in audience mode does. Found in a Redis Cluster trial
// (trials/cluster): its fx start failed at once ("subscribe ws:broadcast:
// ... open subscription connection to <dead master>: connection
// refused"): the broker had started with no channel (so no connection),
// and the helper's first subscribe met the dead master.
func TestShardedStartWaitsOutAFailover(t *testing.T) {
	// Registered first, so run last: once the clients are closed, the
	// dial retries go-redis runs in the background against the dead node
	// end within a second (goleak checks for them).
	t.Cleanup(func() { time.Sleep(1100 * time.Millisecond) })
	cl := redistest.StartReplicatedCluster(t, 3)
	ctx := context.Background()
	slot, err := cl.Nodes[0].Client().ClusterKeySlot(ctx, "ws:broadcast").Result()
	if err != nil {
		t.Fatal(err)
	}
	owner := min(int(slot)/(16384/len(cl.Nodes)), len(cl.Nodes)-1)
	cl.Nodes[owner].Kill()
	began := time.Now()
	s, err := fxtest.Start(
		websocket.WithAuthenticate(auth),
		websocket.WithRedisConnection(cl.Client(func(o *redis.ClusterOptions) { o.MaxRetries = -1 })),
		websocket.WithServerOptions(websocket.ServerOptions{
			RedisPingTimeout: 10 * time.Second,
			RedisBroker:      redisbroker.Options{Mode: redisbroker.ModeSharded},
		}),
	)
	if err != nil {
		t.Fatalf("a sharded server started while ws:broadcast's master (node %d) was down failed its start after %v "+
			"instead of waiting for its replica's takeover: %v", owner, time.Since(began).Round(time.Millisecond), err)
	}
	s.Stop()
}

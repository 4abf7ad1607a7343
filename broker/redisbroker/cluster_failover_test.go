package redisbroker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fxws/websocket/broker/redisbroker"
	"github.com/fxws/websocket/internal/redisinstance"
	"github.com/fxws/websocket/internal/redistest"
	"github.com/fxws/websocket/protocol"
	"github.com/redis/go-redis/v9"
)

// A cluster master dies and its replica takes over its slots: both
// instances find the new topology by themselves, cross-instance delivery
// comes back, and nothing published after that is lost, in both pub/sub
// flavours. The master killed is the one owning the room's channel.
func TestClusterFailover(t *testing.T) {
	for _, mode := range []redisbroker.Mode{redisbroker.ModeSharded, redisbroker.ModeAudience} {
		t.Run(mode.String(), func(t *testing.T) {
			cl := redistest.StartReplicatedCluster(t, 3)
			fast := func(o *redis.ClusterOptions) { o.MaxRetries = -1 }
			opts := outageOpts()
			opts.Mode = mode
			p := newRoomPair(t, func() redis.UniversalClient { return cl.Client(fast) }, opts)

			owner := ownerOf(t, cl, protocol.RoomChannel("room"))
			cl.Nodes[owner].Kill()
			promoted := cl.Replicas[owner].Client()
			waitWithin(t, 20*time.Second, "the replica to take over", func() bool {
				info, err := promoted.Info(context.Background(), "replication").Result()
				return err == nil && strings.Contains(info, "role:master")
			})
			// go-redis learns of the takeover from a failed command: a
			// publish fails once, and the broker has the view of the
			// slots refreshed.
			p.crossesAgain(t, 20, 20*time.Second)
			p.nothingLost(t, 100)
		})
	}
}

// ownerOf returns the index of the master owning channel's slot
// (StartCluster spreads the slots evenly, in order).
func ownerOf(t *testing.T, cl *redistest.Cluster, channel string) int {
	t.Helper()
	slot, err := cl.Nodes[0].Client().ClusterKeySlot(context.Background(), channel).Result()
	if err != nil {
		t.Fatal(err)
	}
	return min(int(slot)/(16384/len(cl.Nodes)), len(cl.Nodes)-1)
}

// On a cluster in classic mode, a channel's messages from one instance
// reach the other in the order sent: each channel is published through
// the node owning its slot, not spread over the masters in turn.
func TestClusterClassicKeepsOrder(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	ctx := context.Background()
	a := redisinstance.Start(t, cl.Client(), redisbroker.Options{})
	b := redisinstance.Start(t, cl.Client(), redisbroker.Options{})
	_, localID := a.Connect(t, "u1")
	remote, remoteID := b.Connect(t, "u2")
	a.Join(t, localID, "room")
	b.Join(t, remoteID, "room")
	const n = 500
	for i := 0; i < n; i++ {
		if err := a.Helper.Send(ctx, "room", "seq", i); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		expectData(t, remote, "remote", "seq", fmt.Sprint(i))
	}
}

// A slot moves to another master while an instance holds a sharded
// channel in it: Redis unsubscribes the channel by itself, and the broker
// subscribes it again on the slot's new owner.
func TestShardedChannelFollowsItsSlot(t *testing.T) {
	cl := redistest.StartCluster(t, 2)
	ctx := context.Background()
	b, in := startBroker(t, cl.Client(), redisbroker.Options{
		Mode: redisbroker.ModeSharded, ReconnectBackoffMin: 10 * time.Millisecond, ReconnectBackoffMax: 100 * time.Millisecond,
	})
	const ch = "ws:room:moving"
	if err := b.Subscribe(ctx, ch); err != nil {
		t.Fatal(err)
	}
	pub := cl.Client()
	if err := pub.SPublish(ctx, ch, "before").Err(); err != nil {
		t.Fatal(err)
	}
	in.wait(t, ch+"|before")

	from := ownerOf(t, cl, ch)
	to := 1 - from
	cl.MoveSlot(redisbroker.Slot(ch), from, to)
	waitFor(t, "the broker to resubscribe", func() bool { return b.Stats().Reconnects >= 1 })
	// SPUBLISH on the new owner must now reach the broker.
	reachesVia(t, cl.Nodes[to], b, in, ch)
}

// reachesVia waits until an SPUBLISH of ch on node (a master serving ch's
// slot) has a subscriber there, b's, and b's inbox in gets that message.
func reachesVia(t *testing.T, node *redistest.Server, b *redisbroker.Broker, in *inbox, ch string) {
	t.Helper()
	ctx := context.Background()
	c := node.Client()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		n, err := c.SPublish(ctx, ch, fmt.Sprint("after-", i)).Result()
		if err == nil && n == 1 {
			in.wait(t, fmt.Sprint(ch, "|after-", i))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never had its subscriber on %s (last SPUBLISH: %d, %v; broker %+v)", ch, node.Addr(), n, err, b.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

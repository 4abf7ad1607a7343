package redisbroker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fxws/websocket/broker/redisbroker"
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
			ctx := context.Background()
			fast := func(o *redis.ClusterOptions) { o.MaxRetries = -1 }
			opts := outageOpts()
			opts.Mode = mode
			a := redistest.StartInstance(t, cl.Client(fast), opts)
			b := redistest.StartInstance(t, cl.Client(fast), opts)
			local, localID := a.Connect(t, "u1")
			remote, remoteID := b.Connect(t, "u2")
			a.Join(t, localID, "room")
			b.Join(t, remoteID, "room")
			if err := a.Helper.Send(ctx, "room", "before", 0); err != nil {
				t.Fatal(err)
			}
			expectData(t, remote, "remote", "before", `0`)

			owner := ownerOf(t, cl, protocol.RoomChannel("room"))
			cl.Nodes[owner].Kill()
			promoted := cl.Replicas[owner].Client()
			waitFor20(t, "the replica to take over", func() bool {
				info, err := promoted.Info(ctx, "replication").Result()
				return err == nil && strings.Contains(info, "role:master")
			})
			// Until both instances have found the new owner, sends may
			// fail (go-redis learns of the takeover from a failed command:
			// a publish fails once, and the broker has the view of the
			// slots refreshed) or miss the other instance. Probe until 20
			// in a row cross.
			deadline := time.Now().Add(20 * time.Second)
			for i, run := 0, 0; run < 20; i++ {
				if time.Now().After(deadline) {
					t.Fatalf("sends did not cross instances reliably within 20 s of the takeover (a: %+v, b: %+v)", a.Broker.Stats(), b.Broker.Stats())
				}
				err := a.Helper.Send(ctx, "room", "probe", i)
				expectData(t, local, "local", "probe", fmt.Sprint(i)) // local delivery goes on
				pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
				m, rerr := remote.Expect(pctx, "probe")
				cancel()
				run++
				if err != nil || rerr != nil || string(m.Data) != fmt.Sprint(i) {
					run = 0
				}
			}
			const n = 100
			for i := 0; i < n; i++ {
				if err := a.Helper.Send(ctx, "room", "after", i); err != nil {
					t.Fatalf("send %d after the takeover: %v", i, err)
				}
			}
			for i := 0; i < n; i++ {
				expectData(t, remote, "remote", "after", fmt.Sprint(i))
				expectData(t, local, "local", "after", fmt.Sprint(i))
			}
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

// waitFor20 is waitFor with the 20 s a cluster failover may take here.
func waitFor20(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// On a cluster in classic mode, a channel's messages from one instance
// reach the other in the order sent: each channel is published through
// the node owning its slot, not spread over the masters in turn.
func TestClusterClassicKeepsOrder(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	ctx := context.Background()
	a := redistest.StartInstance(t, cl.Client(), redisbroker.Options{})
	b := redistest.StartInstance(t, cl.Client(), redisbroker.Options{})
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

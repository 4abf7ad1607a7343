package redisbroker_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fxws/websocket/broker/redisbroker"
	"github.com/fxws/websocket/internal/redistest"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// chansOn returns n channels of prefix whose slots the master of index
// node owns (StartCluster's even split over masters).
func chansOn(masters, node int, prefix string, n int) []string {
	var out []string
	for i := 0; len(out) < n; i++ {
		ch := prefix + strconv.Itoa(i)
		if min(redisbroker.Slot(ch)/(16384/masters), masters-1) == node {
			out = append(out, ch)
		}
	}
	return out
}

// renewOnce holds a crowd of channels and lets it go, and waits for the
// renewal that follows.
func renewOnce(t *testing.T, b *redisbroker.Broker, crowdChans []string) {
	t.Helper()
	ctx := context.Background()
	before := b.Stats().Renewals
	if err := b.Subscribe(ctx, crowdChans...); err != nil {
		t.Fatal(err)
	}
	if err := b.Unsubscribe(ctx, crowdChans...); err != nil {
		t.Fatal(err)
	}
	waitStats(t, b, "a renewal", func(st redisbroker.Stats) bool { return st.Renewals > before })
}

// renewingBroker starts a broker in ModeSharded on client that renews from
// a peak of 64 channels, holding one channel on master 0, which it returns.
func renewingBroker(t *testing.T, client *redis.ClusterClient, log *zap.Logger) (*redisbroker.Broker, *inbox, string) {
	t.Helper()
	b, in := startRenewing(t, client, redisbroker.Options{Mode: redisbroker.ModeSharded, Logger: log}, nil)
	kept := chansOn(3, 0, "ws:room:kept-", 1)[0]
	if err := b.Subscribe(context.Background(), kept); err != nil {
		t.Fatal(err)
	}
	return b, in, kept
}

// After a renewal on a cluster, a channel on a master the old session had
// no connection to: the successor opens a connection to it once the
// handover is over, and that one delivers from the start.
func TestRenewedSessionDeliversOnAFreshNode(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	ctx := context.Background()
	b, in, kept := renewingBroker(t, cl.Client(), zap.NewNop())
	// A crowd on masters 0 and 1 only.
	crowdChans := append(chansOn(3, 0, "ws:client:c0-", 100), chansOn(3, 1, "ws:client:c1-", 100)...)
	renewOnce(t, b, crowdChans)

	pub := cl.Client()
	pub.SPublish(ctx, kept, "a")
	in.wait(t, kept+"|a")

	fresh := chansOn(3, 2, "ws:room:fresh-", 1)[0]
	if err := b.Subscribe(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	n, err := pub.SPublish(ctx, fresh, "b").Result()
	if err != nil || n != 1 {
		t.Fatalf("spublish: %d receivers, %v", n, err)
	}
	in.wait(t, fresh+"|b")
}

// A master the live (renewed) session holds nothing on is failed over
// (CLUSTER FAILOVER: the old master lives on, as a replica). Then a
// channel in its slots is subscribed: it must be delivered.
func TestRenewedSessionDeliversAfterAFailover(t *testing.T) {
	cl := redistest.StartReplicatedCluster(t, 3)
	ctx := context.Background()
	client := cl.Client()
	b, in, _ := renewingBroker(t, client, zap.NewNop())
	var crowdChans []string
	for node := range 3 {
		crowdChans = append(crowdChans, chansOn(3, node, "ws:client:c"+strconv.Itoa(node)+"-", 50)...)
	}
	renewOnce(t, b, crowdChans)

	failOver(t, cl, client, 2)
	fresh := chansOn(3, 2, "ws:room:fresh-", 1)[0]
	if err := b.Subscribe(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	pub := cl.Client()
	waitWithin(t, 10*time.Second, "a subscriber on the promoted master", func() bool {
		n, err := pub.SPublish(ctx, fresh, "b").Result()
		return err == nil && n == 1
	})
	in.wait(t, fresh+"|b")
}

// failOver promotes master node's replica with CLUSTER FAILOVER (the old
// master lives on, as a replica) and waits until client routes to it.
func failOver(t *testing.T, cl *redistest.Cluster, client *redis.ClusterClient, node int) {
	t.Helper()
	ctx := context.Background()
	replica := cl.Replicas[node].Client()
	defer replica.Close()
	if err := replica.Do(ctx, "CLUSTER", "FAILOVER").Err(); err != nil {
		t.Fatal(err)
	}
	probe := chansOn(3, node, "ws:room:probe-", 1)[0]
	waitWithin(t, 20*time.Second, "the client to route to the promoted replica", func() bool {
		client.ReloadState(ctx)
		nc, err := client.MasterForKey(ctx, probe)
		return err == nil && nc.Options().Addr == cl.Replicas[node].Addr()
	})
}

// After a failover that leaves the old master up as a replica, with no
// channel held on it, the next crowd that comes and goes is renewed: the
// connection to the replica has nothing to hand over.
func TestRenewalAfterAFailover(t *testing.T) {
	cl := redistest.StartReplicatedCluster(t, 3)
	ctx := context.Background()
	client := cl.Client()
	core, logs := observer.New(zapcore.WarnLevel)
	b, _, _ := renewingBroker(t, client, zap.New(core))
	crowdOn := func(r int) []string {
		var out []string
		for node := range 3 {
			out = append(out, chansOn(3, node, "ws:client:r"+strconv.Itoa(r)+"-"+strconv.Itoa(node)+"-", 50)...)
		}
		return out
	}
	renewOnce(t, b, crowdOn(1)) // the session now has a connection to every master
	failOver(t, cl, client, 2)
	if err := b.Subscribe(ctx, crowdOn(2)...); err != nil {
		t.Fatal(err)
	}
	if err := b.Unsubscribe(ctx, crowdOn(2)...); err != nil {
		t.Fatal(err)
	}
	waitWithin(t, 10*time.Second, "a second renewal", func() bool {
		if f := logs.FilterMessage("subscription renewal failed").All(); len(f) > 0 {
			for _, e := range f {
				for _, fld := range e.Context {
					if fld.Key == "error" {
						if err, ok := fld.Interface.(error); ok && strings.Contains(err.Error(), "not a master") {
							t.Fatalf("renewal failed: %v", err)
						}
					}
				}
			}
		}
		return b.Stats().Renewals >= 2
	})
}

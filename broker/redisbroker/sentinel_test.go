package redisbroker_test

import (
	"context"
	"testing"
	"time"

	"github.com/fxws/websocket/broker/redisbroker"
	"github.com/fxws/websocket/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// The Sentinel promotes the replica, the master having died or been
// demoted on request: both instances, on failover clients, find the new
// master by themselves, cross-instance delivery comes back, and nothing
// published after that is lost. Local delivery never stops.
func TestSentinelFailover(t *testing.T) {
	kill := func(st *redistest.Sentinel) { st.Master.Kill() }
	planned := func(st *redistest.Sentinel) {
		if err := st.Failover(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("master killed", func(t *testing.T) {
		testFailover(t, outageOpts(), kill, false)
	})
	// The old master stays up, and a master, until the Sentinel demotes
	// it (which may take ten seconds and more): go-redis moves its pool to
	// the new master but leaves pub/sub connections where they are. Only
	// the loopback probe finds the subscriptions out of the fleet's reach:
	// here the one that follows ProbeInterval of silence.
	t.Run("planned", func(t *testing.T) {
		testFailover(t, outageOpts(), planned, false)
	})
	// The same, with the instances publishing and a ProbeInterval too long
	// to matter: a publish to a channel the instance holds that reaches no
	// subscriber at all (not even the instance itself) has the connection
	// probed at once.
	t.Run("planned, found by a publish", func(t *testing.T) {
		opts := outageOpts()
		opts.ProbeInterval = time.Hour
		testFailover(t, opts, planned, true)
	})
}

// testFailover runs two instances through failover. With publish, both
// publish to their room until they have resubscribed; without, they wait
// in silence.
func testFailover(t *testing.T, opts redisbroker.Options, failover func(*redistest.Sentinel), publish bool) {
	st := redistest.StartSentinel(t)
	ctx := context.Background()
	fast := func(o *redis.FailoverOptions) { o.MaxRetries = -1 }
	p := newRoomPair(t, func() redis.UniversalClient { return st.Client(fast) }, opts)

	failover(st)
	waitFor(t, "the sentinel to promote the replica", func() bool {
		addr, err := st.MasterAddr(ctx)
		return err == nil && addr == st.Replica.Addr()
	})
	// Each instance rebuilds its subscriptions on the new master: the
	// connection failed, or the loopback probe found it deaf. go-redis
	// moved the instance's pool before that (it closes the connections to
	// the old master as it switches, failing a publish in flight).
	waitFor(t, "both instances to resubscribe", func() bool {
		if publish {
			_ = p.a.Helper.Send(ctx, "room", "meanwhile", 0)
			_ = p.b.Helper.Send(ctx, "room", "meanwhile", 0)
		}
		return p.a.Broker.Stats().Reconnects >= 1 && p.b.Broker.Stats().Reconnects >= 1
	})
	p.crossesAgain(t, 1, 15*time.Second)
	p.nothingLost(t, 100)
}

package redisbroker_test

// The per-master repair of ModeSharded on a cluster, under the faults and
// races a review of it found: kept unsubscribes, a whole cluster down, a
// stale slot map, a paused master holding the turn or Close, and churn
// through repeated failovers.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/broker/redisbroker"
	"github.com/fxws/websocket/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// channelOn returns a room channel owned by master i, whose slot differs
// from those of avoid.
func channelOn(t *testing.T, cl *redistest.Cluster, i int, prefix string, avoid ...string) string {
	t.Helper()
	for n := 0; ; n++ {
		ch := fmt.Sprintf("ws:room:%s-%d", prefix, n)
		if ownerOf(t, cl, ch) != i {
			continue
		}
		clash := false
		for _, a := range avoid {
			if redisbroker.Slot(a) == redisbroker.Slot(ch) {
				clash = true
			}
		}
		if !clash {
			return ch
		}
	}
}

func shardNumSub(t *testing.T, n *redistest.Server, ch string) int64 {
	t.Helper()
	res, err := n.Client().Do(context.Background(), "PUBSUB", "SHARDNUMSUB", ch).Slice()
	if err != nil || len(res) != 2 {
		t.Fatalf("PUBSUB SHARDNUMSUB %s on %s: %v %v", ch, n.Addr(), res, err)
	}
	return res[1].(int64)
}

// An Unsubscribe that gives up waiting for the turn while a repair holds
// it is said to be kept (ErrChangeKept: "the caller need not retry it").
// The repair took its copy of the set before, so it does not unsubscribe
// it, and nothing asks for another round: the channel stays subscribed on
// its (healthy) master for as long as the session lives, which in
// ModeSharded on a cluster is for ever.
func TestShardedUnsubscribeKeptDuringARepairIsApplied(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	ctx := context.Background()
	b, _ := startBroker(t, cl.Client(), redisbroker.Options{
		Mode: redisbroker.ModeSharded, ProbeInterval: 200 * time.Millisecond, PingTimeout: 500 * time.Millisecond,
	})
	a := 0
	c1 := channelOn(t, cl, a, "slow")
	c2 := channelOn(t, cl, 1, "healthy")
	if err := b.Subscribe(ctx, c1, c2); err != nil {
		t.Fatal(err)
	}
	// Stall master a briefly (below cluster-node-timeout): its connection
	// is found dead by the probe, and the repair that follows waits on it
	// (HELLO), holding the turn, after it has taken its copy of the set.
	var restored atomic.Int64 // NotifyRestored hears of the repair too
	b.NotifyRestored(func(time.Duration) { restored.Add(1) })
	resume := pause(ctx, t, cl.Nodes[a])
	waitFor(t, "the stalled master's connection to be lost", func() bool { return b.Stats().Degraded })
	time.Sleep(300 * time.Millisecond)
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err := b.Unsubscribe(short, c2)
	cancel()
	if !errors.Is(err, broker.ErrChangeKept) {
		t.Fatalf("setup: Unsubscribe while the repair holds the turn: %v, want it kept", err)
	}
	time.Sleep(200 * time.Millisecond)
	resume()
	waitFor(t, "the repair to end", func() bool {
		st := b.Stats()
		return st.Reconnects >= 1 && !st.Degraded
	})
	if n, want := restored.Load(), int64(b.Stats().Reconnects); n != want {
		t.Errorf("NotifyRestored's f called %d times for %d repairs", n, want)
	}
	time.Sleep(time.Second)
	if n := shardNumSub(t, cl.Nodes[1], c2); n != 0 {
		t.Errorf("Unsubscribe(%s) was reported kept (%v) but, after the repair, master 1 still holds %d subscription(s) of it (broker channels %v, stats %+v)",
			c2, err, n, b.Channels(), b.Stats())
	}
}

// Every master of the cluster is gone: the broker reaches no Redis at all,
// yet Connected (the helper's BrokerConnected, documented as readiness) and
// Stats().Connected stay true for ever, as the per-master session never
// dies. Before the change the session was lost and Connected was false.
func TestShardedWholeClusterDownIsNotConnected(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	ctx := context.Background()
	fast := func(o *redis.ClusterOptions) { o.MaxRetries = -1 }
	b, _ := startBroker(t, cl.Client(fast), redisbroker.Options{
		Mode: redisbroker.ModeSharded, ProbeInterval: 200 * time.Millisecond, PingTimeout: 500 * time.Millisecond,
	})
	var chans []string
	for i := range cl.Nodes {
		chans = append(chans, channelOn(t, cl, i, "all"))
	}
	if err := b.Subscribe(ctx, chans...); err != nil {
		t.Fatal(err)
	}
	for _, n := range cl.Nodes {
		n.Kill()
	}
	time.Sleep(5 * time.Second)
	if st := b.Stats(); b.Connected() || st.Connected {
		t.Errorf("every node of the cluster killed 5 s ago: Connected() = %v, Stats %+v; want not connected", b.Connected(), st)
	}
}

// Subscribe returns nil, "once Redis has confirmed them", while the node it
// sent SSUBSCRIBE to (by a slot map that is stale: the slot moved to
// another master) answered MOVED: the channel has no subscriber when
// Subscribe returns, until a repair places it.
func TestShardedSubscribeRefusedByStaleSlotMapIsNotReportedDone(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	ctx := context.Background()
	b, _ := startBroker(t, cl.Client(), redisbroker.Options{Mode: redisbroker.ModeSharded})
	from, to := 0, 1
	c0 := channelOn(t, cl, from, "anchor")
	x := channelOn(t, cl, from, "moved", c0)
	if err := b.Subscribe(ctx, c0); err != nil { // the connection to "from"
		t.Fatal(err)
	}
	cl.MoveSlot(redisbroker.Slot(x), from, to)
	err := b.Subscribe(ctx, x)
	subs := shardNumSub(t, cl.Nodes[to], x)
	if err == nil && subs == 0 {
		t.Errorf("Subscribe(%s) returned nil, but the slot's owner (master %d) has %d subscribers of it (the SSUBSCRIBE went to master %d by a stale map and was refused with MOVED)",
			x, to, subs, from)
	}
	t.Logf("Subscribe: %v; subscribers on the owner right after: %d", err, subs)
}

// A repair's HELLO to a paused master (isMaster, in open and dropDemoted)
// and its slot-map reload are bounded by PingTimeout (through the checks
// runner: go-redis applies the client's ReadTimeout, not the context's
// deadline, unless ContextTimeoutEnabled). They were not, and the repair
// held the broker's turn for the client's whole ReadTimeout while the
// master stayed paused: every Subscribe, on healthy masters too, waited
// behind it.
func TestShardedRepairOnAPausedMasterHoldsTheTurnNoLongerThanPingTimeout(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	ctx := context.Background()
	slowReads := func(o *redis.ClusterOptions) { o.ReadTimeout = 10 * time.Second }
	b, _ := startBroker(t, cl.Client(slowReads), redisbroker.Options{
		Mode: redisbroker.ModeSharded, ProbeInterval: 200 * time.Millisecond, PingTimeout: 300 * time.Millisecond,
	})
	paused := 0
	c1 := channelOn(t, cl, paused, "paused")
	c2 := channelOn(t, cl, 1, "steady")
	c3 := channelOn(t, cl, 1, "joined")
	if err := b.Subscribe(ctx, c1, c2); err != nil {
		t.Fatal(err)
	}
	pause(ctx, t, cl.Nodes[paused])
	waitFor(t, "the paused master's connection to be found dead", func() bool { return b.Stats().Degraded })
	time.Sleep(500 * time.Millisecond)
	// Three tries of 1.5 s each (5 × PingTimeout): a repair round that
	// honours PingTimeout lets at least one through.
	var errs []error
	for range 3 {
		sctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
		began := time.Now()
		err := b.Subscribe(sctx, c3)
		cancel()
		if err == nil {
			return
		}
		errs = append(errs, fmt.Errorf("after %v: %w", time.Since(began).Round(time.Millisecond), err))
	}
	t.Errorf("with master %d paused, Subscribe(%s) on healthy master 1 failed three times in a row (PingTimeout 300ms): %v", paused, c3, errs)
}

// Close does not wait "for a reconnect's PING, whatever the client's
// ReadTimeout" (its doc); it waits for supervise, whose repair's HELLO to a
// paused master once took the client's whole ReadTimeout (for ever with
// ReadTimeout -1), and Close with it.
func TestShardedCloseDuringARepairOnAPausedMasterIsPrompt(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	ctx := context.Background()
	slowReads := func(o *redis.ClusterOptions) { o.ReadTimeout = 10 * time.Second }
	b, _ := startBroker(t, cl.Client(slowReads), redisbroker.Options{
		Mode: redisbroker.ModeSharded, ProbeInterval: 200 * time.Millisecond, PingTimeout: 300 * time.Millisecond,
	})
	paused := 0
	c1 := channelOn(t, cl, paused, "paused")
	c2 := channelOn(t, cl, 1, "steady")
	if err := b.Subscribe(ctx, c1, c2); err != nil {
		t.Fatal(err)
	}
	pause(ctx, t, cl.Nodes[paused])
	waitFor(t, "the paused master's connection to be found dead", func() bool { return b.Stats().Degraded })
	time.Sleep(500 * time.Millisecond) // a repair round waits on the paused master
	began := time.Now()
	_ = b.Close()
	if d := time.Since(began); d > 2*time.Second {
		t.Errorf("Close during a repair waiting on a paused master took %v (PingTimeout 300ms, client ReadTimeout 10s)", d.Round(time.Millisecond))
	}
}

// Two manual failovers of one shard (there and back) while channels are
// subscribed and unsubscribed with short deadlines throughout: once the
// broker is no longer degraded, every channel it holds has exactly one
// subscription in the whole cluster (masters and replicas), and every
// other channel none.
func TestShardedChurnThroughRepeatedFailoversEndsExactlyOnce(t *testing.T) {
	cl := redistest.StartReplicatedCluster(t, 3)
	ctx := context.Background()
	b, _ := startBroker(t, cl.Client(), redisbroker.Options{
		Mode: redisbroker.ModeSharded, ProbeInterval: 300 * time.Millisecond, PingTimeout: 500 * time.Millisecond,
	})
	var universe []string
	for i := range 60 {
		universe = append(universe, fmt.Sprintf("ws:user:churn-%d", i))
	}
	if err := b.Subscribe(ctx, universe[:30]...); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(3 * time.Millisecond):
			}
			ch := universe[(i*7)%len(universe)]
			sctx, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
			if i%3 == 0 {
				_ = b.Unsubscribe(sctx, ch)
			} else {
				_ = b.Subscribe(sctx, ch)
			}
			cancel()
		}
	}()
	role := func(s *redistest.Server) string {
		info, _ := s.Client().Info(ctx, "replication").Result()
		if strings.Contains(info, "role:master") {
			return "master"
		}
		return "replica"
	}
	for _, s := range []*redistest.Server{cl.Replicas[0], cl.Nodes[0]} {
		if err := s.Client().Do(ctx, "CLUSTER", "FAILOVER").Err(); err != nil {
			t.Fatal(err)
		}
		waitWithin(t, 15*time.Second, "the failover", func() bool { return role(s) == "master" })
		time.Sleep(1500 * time.Millisecond)
	}
	close(stop)
	<-done
	waitWithin(t, 10*time.Second, "the broker to be whole", func() bool { return !b.Stats().Degraded })
	time.Sleep(1500 * time.Millisecond)
	held := make(map[string]bool)
	for _, ch := range b.Channels() {
		held[ch] = true
	}
	all := append(append([]*redistest.Server{}, cl.Nodes...), cl.Replicas...)
	for _, ch := range universe {
		var n int64
		where := []string{}
		for _, s := range all {
			if k := shardNumSub(t, s, ch); k > 0 {
				n += k
				where = append(where, fmt.Sprintf("%s(%s)×%d", s.Addr(), role(s), k))
			}
		}
		want := int64(0)
		if held[ch] {
			want = 1
		}
		if n != want {
			t.Errorf("%s (held %v): %d subscriptions in the cluster, want %d: %v (stats %+v)", ch, held[ch], n, want, where, b.Stats())
		}
	}
}

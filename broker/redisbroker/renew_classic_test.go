package redisbroker_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxws/websocket/broker/redisbroker"
	"github.com/fxws/websocket/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// pinnedMaster returns the index in cl.Nodes of the master holding the
// broker's one classic subscription connection.
func pinnedMaster(t *testing.T, cl *redistest.Cluster) int {
	t.Helper()
	for i, s := range cl.Nodes {
		c := s.Client()
		n, err := pubsubClients(context.Background(), c)
		c.Close()
		if err == nil && n > 0 {
			return i
		}
	}
	t.Fatal("no master holds the subscription connection")
	return 0
}

func classicRenewing(t *testing.T, client redis.UniversalClient) (*redisbroker.Broker, *inbox, []string) {
	t.Helper()
	opts := outageOpts()
	opts.Workers = 3
	b, in := startRenewing(t, client, opts, nil)
	kept := []string{"ws:room:k0", "ws:room:k1", "ws:room:k2", "ws:broadcast"}
	if err := b.Subscribe(context.Background(), kept...); err != nil {
		t.Fatal(err)
	}
	return b, in, kept
}

// checkInOrder checks that in holds 0, 1, 2, … on each channel, once each
// and in order, sent in all (an "end" on a channel aside).
func checkInOrder(t *testing.T, in *inbox, sent int64) {
	t.Helper()
	next := map[string]int{}
	for _, m := range in.all() {
		ch, payload, _ := strings.Cut(m, "|")
		if payload == "end" {
			continue
		}
		j, _ := strconv.Atoi(payload)
		if j != next[ch] {
			t.Fatalf("%s: got %d after %d (lost or repeated across a renewal)", ch, j, next[ch]-1)
		}
		next[ch]++
	}
	total := 0
	for _, n := range next {
		total += n
	}
	if int64(total) != sent {
		t.Fatalf("delivered %d of %d", total, sent)
	}
}

// Classic pub/sub on a cluster: the pinned node is demoted to a replica
// (CLUSTER FAILOVER on its replica) and lives on. Renewals then happen on
// the replica; nothing is lost or repeated.
func TestClassicRenewalOnADemotedNode(t *testing.T) {
	cl := redistest.StartReplicatedCluster(t, 3)
	ctx := context.Background()
	client := cl.Client()
	b, in, kept := classicRenewing(t, client)
	idx := pinnedMaster(t, cl)
	failOver(t, cl, client, idx)
	old := cl.Nodes[idx].Client()
	defer old.Close()
	waitWithin(t, 10*time.Second, "old master to be a replica", func() bool {
		info, err := old.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "role:slave")
	})
	pub := cl.Client()
	pub.ReloadState(ctx)
	stop := make(chan struct{})
	var sent atomic.Int64
	var wg sync.WaitGroup
	via := map[string]*redis.Client{} // each channel through its node: see TestRenewalLosesAndRepeatsNothing
	for _, ch := range kept {
		nc, err := pub.MasterForKey(ctx, ch)
		if err != nil {
			t.Fatal(err)
		}
		via[ch] = nc
		publishing(t, &wg, stop, nc, false, ch, &sent)
	}
	before := b.Stats()
	for r := 1; r <= 4; r++ {
		if err := crowd(t, b, fmt.Sprintf("ws:client:crowd-%d-", r), 256, 100); err != nil {
			t.Fatal(err)
		}
		s := waitStats(t, b, fmt.Sprintf("renewal %d", r), func(st redisbroker.Stats) bool { return st.Renewals >= before.Renewals+uint64(r) })
		waitStats(t, b, "traffic", func(now redisbroker.Stats) bool { return now.Received >= s.Received+200 })
	}
	close(stop)
	wg.Wait()
	for _, ch := range kept {
		via[ch].Publish(ctx, ch, "end")
		in.wait(t, ch+"|end")
	}
	checkInOrder(t, in, sent.Load())
	if after := b.Stats(); after.Reconnects != before.Reconnects {
		t.Fatalf("reconnects during renewals: %+v -> %+v", before, after)
	}
	if n, _ := pubsubClients(ctx, old); n != 1 {
		t.Fatalf("%d subscription connections on the demoted node, want the renewed session's", n)
	}
}

// The pinned node is killed: the session is rebuilt on a live node and
// delivery resumes; a renewal after that works.
func TestClassicPinnedNodeKilled(t *testing.T) {
	cl := redistest.StartReplicatedCluster(t, 3)
	ctx := context.Background()
	client := cl.Client(func(o *redis.ClusterOptions) { o.MaxRetries = -1 })
	b, in, kept := classicRenewing(t, client)
	idx := pinnedMaster(t, cl)
	cl.Nodes[idx].Kill()
	waitWithin(t, 30*time.Second, "a reconnect", func() bool { return b.Stats().Reconnects >= 1 })
	pub := cl.Client()
	waitWithin(t, 30*time.Second, "delivery", func() bool {
		pub.ReloadState(ctx)
		nc, err := pub.MasterForKey(ctx, kept[0])
		if err != nil {
			return false
		}
		tok := strconv.FormatInt(time.Now().UnixNano(), 10)
		if nc.Publish(ctx, kept[0], tok).Err() != nil {
			return false
		}
		time.Sleep(100 * time.Millisecond)
		return in.has(kept[0] + "|" + tok)
	})
	before := b.Stats().Renewals
	if err := crowd(t, b, "ws:client:after-kill-", 256, 256); err != nil {
		t.Fatal(err)
	}
	waitStats(t, b, "a renewal after the kill", func(st redisbroker.Stats) bool { return st.Renewals > before })
}

// The README's ACL plus +cluster|slots on every node: classic pub/sub on a
// cluster, with a renewal (node clients, marker on the pinned node).
func TestClusterRenewalUnderTheDocumentedACL(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	ctx := context.Background()
	for _, s := range cl.Nodes {
		admin := s.Client()
		if err := admin.Do(ctx, "ACL", "SETUSER", "fxws", "on", ">secret", "resetkeys", "resetchannels",
			"&ws:*", "&ws:room:*", "&ws:client:*", "&ws:user:*", "-@all", "+@connection", "+@pubsub", "+cluster|slots").Err(); err != nil {
			t.Fatal(err)
		}
		admin.Close()
	}
	client := cl.Client(func(o *redis.ClusterOptions) { o.Username, o.Password = "fxws", "secret" })
	b, in, kept := classicRenewing(t, client)
	if err := crowd(t, b, "ws:client:acl-", 256, 256); err != nil {
		t.Fatal(err)
	}
	waitStats(t, b, "a renewal", func(st redisbroker.Stats) bool { return st.Renewals >= 1 })
	pub := cl.Client()
	for _, ch := range kept {
		pub.Publish(ctx, ch, "end")
		in.wait(t, ch+"|end")
	}
	if st := b.Stats(); st.ProbeFailures != 0 || st.Reconnects != 0 {
		t.Fatalf("under the ACL: %+v", st)
	}
}

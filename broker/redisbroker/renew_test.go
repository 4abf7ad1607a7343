package redisbroker_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxws/websocket/broker/redisbroker"
	"github.com/fxws/websocket/internal/redistest"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"
)

// crowd subscribes n channels of prefix in batches, as the helper sends
// them, then unsubscribes them in batches of leave; it returns the first
// error of the unsubscribes, which go on regardless.
func crowd(t *testing.T, b *redisbroker.Broker, prefix string, n, leave int) error {
	t.Helper()
	ctx := context.Background()
	chans := make([]string, n)
	for i := range chans {
		chans[i] = prefix + strconv.Itoa(i)
	}
	for i := 0; i < n; i += 100 {
		if err := b.Subscribe(ctx, chans[i:min(i+100, n)]...); err != nil {
			t.Fatal(err)
		}
	}
	var first error
	for i := 0; i < n; i += leave {
		if err := b.Unsubscribe(ctx, chans[i:min(i+leave, n)]...); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// publishing publishes 0, 1, 2, … on ch, as fast as it can, until stop is
// closed, counting in sent what Redis took.
func publishing(t *testing.T, wg *sync.WaitGroup, stop <-chan struct{}, pub redis.UniversalClient, sharded bool, ch string, sent *atomic.Int64) {
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			var err error
			if sharded {
				err = pub.SPublish(context.Background(), ch, strconv.Itoa(i)).Err()
			} else {
				err = pub.Publish(context.Background(), ch, strconv.Itoa(i)).Err()
			}
			if err != nil {
				t.Error(err)
				return
			}
			sent.Add(1)
		}
	})
}

// startRenewing starts a broker on client that renews its session from a
// peak of 64 channels (opts.Logger defaults to the test's). beforeMarker,
// unless nil, runs in each renewal just before its marker is published.
func startRenewing(t *testing.T, client redis.UniversalClient, opts redisbroker.Options, beforeMarker func(*redisbroker.Broker)) (*redisbroker.Broker, *inbox) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = zaptest.NewLogger(t)
	}
	b := redisbroker.New(client, opts)
	redisbroker.SetRenewMin(b, 64)
	if beforeMarker != nil {
		redisbroker.SetBeforeMarker(b, func() { beforeMarker(b) })
	}
	in := newInbox()
	if err := b.Start(context.Background(), in.handle); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, in
}

// waitStats polls b's counters until ok holds, for 10 s at most.
func waitStats(t *testing.T, b *redisbroker.Broker, what string, ok func(redisbroker.Stats) bool) redisbroker.Stats {
	t.Helper()
	var st redisbroker.Stats
	waitFor(t, what, func() bool { st = b.Stats(); return ok(st) })
	return st
}

// Once a crowd of channels has come and gone, the broker replaces its
// subscription session by a fresh one; messages flowing meanwhile on the
// channels it keeps arrive once each, in order.
func TestRenewalLosesAndRepeatsNothing(t *testing.T) {
	type setup struct {
		name    string
		mode    redisbroker.Mode
		cluster bool
	}
	for _, c := range []setup{
		{"audience", redisbroker.ModeAudience, false},
		{"sharded", redisbroker.ModeSharded, false},
		{"sharded-cluster", redisbroker.ModeSharded, true},
		{"classic-cluster", redisbroker.ModeAudience, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			sharded := c.mode == redisbroker.ModeSharded
			var client, pub redis.UniversalClient
			var servers []*redis.Client // each node's, for what it holds
			if c.cluster {
				cl := redistest.StartCluster(t, 3)
				client, pub = cl.Client(), cl.Client()
				for _, node := range cl.Nodes {
					servers = append(servers, node.Client())
				}
			} else {
				srv := redistest.Start(t)
				client, pub = srv.Client(), srv.Client()
				servers = []*redis.Client{srv.Client()}
			}
			defer pub.Close()
			for _, s := range servers {
				defer s.Close()
			}
			b, in := startRenewing(t, client, redisbroker.Options{Mode: c.mode, Workers: 3}, nil)
			kept := []string{"ws:room:k0", "ws:room:k1", "ws:room:k2", "ws:room:k3", "ws:room:k4", "ws:broadcast"}
			if err := b.Subscribe(ctx, kept...); err != nil {
				t.Fatal(err)
			}

			// Publish on the kept channels, one publisher each, as fast
			// as they can, through every renewal.
			stop := make(chan struct{})
			var sent atomic.Int64
			var wg sync.WaitGroup
			for _, ch := range kept {
				via := pub
				if cc, ok := pub.(*redis.ClusterClient); ok && !sharded {
					// Through the channel's node, as the broker does: a
					// keyless PUBLISH goes to any node, and two nodes
					// forward a channel's messages out of order.
					nc, err := cc.MasterForKey(ctx, ch)
					if err != nil {
						t.Fatal(err)
					}
					via = nc
				}
				publishing(t, &wg, stop, via, sharded, ch, &sent)
			}
			const rounds = 8
			for r := 1; r <= rounds; r++ {
				if err := crowd(t, b, fmt.Sprintf("ws:client:crowd-%d-", r), 256, 100); err != nil {
					t.Fatal(err)
				}
				st := waitStats(t, b, fmt.Sprintf("renewal %d", r), func(st redisbroker.Stats) bool { return st.Renewals >= uint64(r) })
				// Let traffic flow between renewals too.
				waitStats(t, b, "traffic", func(now redisbroker.Stats) bool { return now.Received >= st.Received+200 })
			}
			close(stop)
			wg.Wait()
			if t.Failed() {
				return
			}
			for _, ch := range kept {
				if sharded {
					pub.SPublish(ctx, ch, "end")
				} else {
					pub.Publish(ctx, ch, "end")
				}
				in.wait(t, ch+"|end")
			}

			checkInOrder(t, in, sent.Load())
			st := b.Stats()
			if st.Reconnects != 0 || st.Sessions != 1+st.Renewals {
				t.Fatalf("stats %+v: want no reconnect, and one session per renewal", st)
			}
			t.Logf("%d renewals, %d messages across them", st.Renewals, sent.Load())

			// Redis holds what is kept, and the session's own probe channel
			// (none on a cluster in ModeSharded), on one connection per
			// server that holds any of it.
			var held []string
			conns := 0
			for _, s := range servers {
				var chans []string
				if sharded {
					chans, _ = s.PubSubShardChannels(ctx, "*").Result()
				} else {
					chans, _ = s.PubSubChannels(ctx, "*").Result()
				}
				held = append(held, chans...)
				if len(chans) > 0 {
					conns++
				}
			}
			want := len(kept) + 1
			if c.cluster && sharded {
				want = len(kept)
			}
			if len(held) != want {
				t.Fatalf("channels subscribed on redis = %v, want %v (and a probe channel but on a cluster)", held, kept)
			}
			waitFor(t, "the old connections to close", func() bool {
				n := 0
				for _, s := range servers {
					k, err := pubsubClients(ctx, s)
					if err != nil {
						return false
					}
					n += k
				}
				return n == conns
			})
		})
	}
}

// pubsubClients counts the connections Redis has in pub/sub mode.
func pubsubClients(ctx context.Context, c *redis.Client) (int, error) {
	list, err := c.ClientList(ctx).Result()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, " sub=") && !strings.Contains(line, " sub=0 ") ||
			strings.Contains(line, " ssub=") && !strings.Contains(line, " ssub=0 ") {
			n++
		}
	}
	return n, nil
}

// What a crowd leaves in the process once it has gone: with renewal, the
// tables go with the session that grew them.
func TestRenewalGivesBackTheCrowdsMemory(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	b, _ := startBroker(t, srv.Client(), redisbroker.Options{})
	if err := b.Subscribe(ctx, "ws:broadcast"); err != nil {
		t.Fatal(err)
	}
	before := liveHeap()
	const n = 60000 // about 2 MiB of go-redis's table alone, if kept
	// Left in one go, so that exactly one renewal follows.
	if err := crowd(t, b, "ws:client:0b9d5c8e-1f7a-4c1e-9a3b-", n, n); err != nil {
		t.Fatal(err)
	}
	waitStats(t, b, "renewal", func(st redisbroker.Stats) bool { return st.Renewals == 1 })
	after := liveHeap()
	grown := int64(after) - int64(before)
	t.Logf("live heap after a crowd of %d channels came and went: %+d KiB", n, grown/1024)
	if grown > 1<<20 {
		t.Fatalf("live heap grew by %d KiB after the crowd left", grown/1024)
	}
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// Redis stops answering on every connection open, the old session's
// included, just as a renewal publishes its marker: the renewal gives up,
// the old session's probe finds it dead, and the broker reconnects,
// holding exactly the channels held, and delivers again.
func TestRenewalOnAFrozenRedisRecovers(t *testing.T) {
	var proxy *redistest.Proxy
	var froze atomic.Bool
	srv := redistest.Start(t)
	proxy = redistest.NewProxy(t, srv.Addr())
	rc := redis.NewClient(&redis.Options{Addr: proxy.Addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = rc.Close() })
	b, in := startRenewing(t, rc, redisbroker.Options{PingTimeout: 300 * time.Millisecond}, func(*redisbroker.Broker) {
		// Every connection open now, the publishing pool's included,
		// stops answering; the reconnect opens new ones.
		if froze.CompareAndSwap(false, true) {
			proxy.Freeze()
		}
	})
	ctx := context.Background()
	if err := b.Subscribe(ctx, "ws:room:a"); err != nil {
		t.Fatal(err)
	}
	// The unsubscribes that follow the failed renewal fail with its session.
	_ = crowd(t, b, "ws:client:crowd-", 256, 100)
	st := waitStats(t, b, "reconnect", func(st redisbroker.Stats) bool { return st.Reconnects >= 1 && st.Connected })
	if st.Renewals != 0 {
		t.Fatalf("stats %+v: a renewal counted although its marker was never published", st)
	}
	pub := srv.Client()
	defer pub.Close()
	n, err := pub.PubSubNumSub(ctx, "ws:room:a", "ws:client:crowd-0").Result()
	if err != nil {
		t.Fatal(err)
	}
	if n["ws:room:a"] != 1 || n["ws:client:crowd-0"] != 0 {
		t.Fatalf("subscribers after the reconnect = %v", n)
	}
	pub.Publish(ctx, "ws:room:a", "after")
	in.wait(t, "ws:room:a|after")
}

// Close while a renewal is under way: no hang, no goroutine left
// (goleak, in TestMain).
func TestCloseDuringRenewal(t *testing.T) {
	srv := redistest.Start(t)
	closed := make(chan struct{})
	b, _ := startRenewing(t, srv.Client(), redisbroker.Options{}, func(b *redisbroker.Broker) {
		go func() {
			_ = b.Close()
			close(closed)
		}()
	})
	_ = crowd(t, b, "ws:client:crowd-", 256, 100) // fails once closed
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close during a renewal did not return")
	}
}

// Subscriptions change all the time while renewals happen: the kept
// channels lose and repeat nothing; channels toggled on and off may lose
// messages around their changes but never repeat or reorder one; no change
// fails; and Redis ends holding exactly the channels held.
func TestRenewalsAmidSubscriptionChanges(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	b, in := startRenewing(t, srv.Client(), redisbroker.Options{Workers: 3, Logger: zap.NewNop()}, nil)
	kept := []string{"ws:room:k0", "ws:room:k1"}
	toggled := []string{"ws:room:t0", "ws:room:t1", "ws:room:t2", "ws:room:t3"}
	if err := b.Subscribe(ctx, kept...); err != nil {
		t.Fatal(err)
	}
	pub := srv.Client()
	defer pub.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }); wg.Wait() }
	defer halt()
	sent := map[string]*atomic.Int64{}
	for _, ch := range append(slices.Clone(kept), toggled...) {
		sent[ch] = new(atomic.Int64)
		publishing(t, &wg, stop, pub, false, ch, sent[ch])
	}
	wg.Go(func() { // toggles, concurrently with the crowds
		r := rand.New(rand.NewPCG(1, 2))
		for {
			select {
			case <-stop:
				return
			default:
			}
			ch := toggled[r.IntN(len(toggled))]
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			var err error
			if r.IntN(2) == 0 {
				err = b.Subscribe(cctx, ch)
			} else {
				err = b.Unsubscribe(cctx, ch)
			}
			cancel()
			if err != nil {
				t.Errorf("toggle %s: %v", ch, err)
				return
			}
		}
	})
	const rounds = 6
	for r := 1; r <= rounds; r++ {
		if err := crowd(t, b, fmt.Sprintf("ws:client:crowd-%d-", r), 256, 37); err != nil {
			t.Fatal(err)
		}
		waitStats(t, b, fmt.Sprintf("renewal %d", r), func(st redisbroker.Stats) bool { return st.Renewals >= uint64(r) })
	}
	halt()
	if t.Failed() {
		return
	}
	for _, ch := range kept {
		pub.Publish(ctx, ch, "end")
		in.wait(t, ch+"|end")
	}
	last := map[string]int{}
	got := map[string]int{}
	for _, m := range in.all() {
		ch, payload, _ := strings.Cut(m, "|")
		if payload == "end" {
			continue
		}
		j, _ := strconv.Atoi(payload)
		prev, seen := last[ch]
		isKept := slices.Contains(kept, ch)
		switch {
		case seen && j <= prev:
			t.Fatalf("%s: got %d after %d (repeated or reordered)", ch, j, prev)
		case isKept && !seen && j != 0:
			t.Fatalf("%s: first message %d", ch, j)
		case isKept && seen && j != prev+1:
			t.Fatalf("%s: got %d after %d (lost)", ch, j, prev)
		}
		last[ch] = j
		got[ch]++
	}
	for _, ch := range kept {
		if int64(got[ch]) != sent[ch].Load() {
			t.Fatalf("%s: delivered %d of %d", ch, got[ch], sent[ch].Load())
		}
	}
	st := b.Stats()
	t.Logf("stats %+v, per channel %v", st, got)
	if st.Reconnects != 0 {
		t.Fatalf("reconnects: %+v", st)
	}
	waitFor(t, "one subscription connection", func() bool {
		n, err := pubsubClients(ctx, pub)
		return err == nil && n == 1
	})
	var onRedis []string
	held := b.Channels()
	waitFor(t, "redis to hold what the broker holds", func() bool {
		onRedis, _ = pub.PubSubChannels(ctx, "*").Result()
		var probes, others []string
		for _, ch := range onRedis {
			if strings.HasPrefix(ch, "ws:client:fxws-probe-") {
				probes = append(probes, ch)
			} else {
				others = append(others, ch)
			}
		}
		slices.Sort(others)
		return slices.Equal(others, held) && len(probes) == 1
	})
}

// A renewal whose marker was never published (the runner for checks is
// full, so the publish gives up before sending anything) leaves the live
// session as it was: no reconnect, nothing lost.
func TestUnsentMarkerKeepsTheSession(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	core, logs := observer.New(zapcore.WarnLevel)
	release := make(chan struct{})
	var once atomic.Bool
	b, in := startRenewing(t, srv.Client(), redisbroker.Options{PingTimeout: 300 * time.Millisecond, Logger: zap.New(core)}, func(b *redisbroker.Broker) {
		if once.CompareAndSwap(false, true) {
			redisbroker.FillChecks(b, release)
		}
	})
	if err := b.Subscribe(ctx, "ws:room:k"); err != nil {
		t.Fatal(err)
	}
	pub := srv.Client()
	defer pub.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sent atomic.Int64
	publishing(t, &wg, stop, pub, false, "ws:room:k", &sent)
	if err := crowd(t, b, "ws:client:crowd-", 256, 256); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the renewal to give up", func() bool { return logs.FilterMessage("subscription renewal failed").Len() > 0 })
	close(release)
	close(stop)
	wg.Wait()
	pub.Publish(ctx, "ws:room:k", "end")
	in.wait(t, "ws:room:k|end")
	msgs := in.all()
	if int64(len(msgs)-1) != sent.Load() {
		t.Fatalf("delivered %d of %d", len(msgs)-1, sent.Load())
	}
	for i, m := range msgs[:len(msgs)-1] {
		if m != "ws:room:k|"+strconv.Itoa(i) {
			t.Fatalf("message %d is %q", i, m)
		}
	}
	if st := b.Stats(); st.Reconnects != 0 || st.Renewals != 0 || st.Sessions != 1 {
		t.Fatalf("stats %+v: want the first session still live", st)
	}
}

// A renewal that fails (here the successor cannot connect: Redis is at
// maxclients) is not tried again on every change, only once the channels
// have fallen to a quarter again.
func TestFailedRenewalWaitsForTheNextFall(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	core, logs := observer.New(zapcore.WarnLevel)
	b, _ := startRenewing(t, srv.Client(), redisbroker.Options{Logger: zap.New(core)}, nil)
	chans := make([]string, 256)
	for i := range chans {
		chans[i] = "ws:client:crowd-" + strconv.Itoa(i)
	}
	if err := b.Subscribe(ctx, chans...); err != nil {
		t.Fatal(err)
	}
	admin := srv.Client()
	defer admin.Close()
	if err := admin.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	// No new connection from now on (the ones open stay).
	list, err := admin.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	open := strings.Count(strings.TrimSpace(list), "\n") + 1
	if err := admin.ConfigSet(ctx, "maxclients", strconv.Itoa(open)).Err(); err != nil {
		t.Fatal(err)
	}
	failures := func() int { return logs.FilterMessage("subscription renewal failed").Len() }
	if err := b.Unsubscribe(ctx, chans[:200]...); err != nil { // 56 left: ≤ 256/4
		t.Fatal(err)
	}
	waitFor(t, "the renewal to fail", func() bool { return failures() == 1 })
	for i := 0; i < 20; i++ { // each would have asked for one more
		if err := b.Subscribe(ctx, "ws:room:r"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond) // time for supervise to try, were it asked
	}
	if n := failures(); n != 1 {
		t.Fatalf("%d failed renewals after 20 changes, want 1", n)
	}
	// Falling to a quarter of what it was at the attempt asks again.
	if err := admin.ConfigSet(ctx, "maxclients", "10000").Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.Unsubscribe(ctx, chans[200:]...); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if err := b.Unsubscribe(ctx, "ws:room:r"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitStats(t, b, "a renewal after the next fall", func(st redisbroker.Stats) bool { return st.Renewals == 1 })
}

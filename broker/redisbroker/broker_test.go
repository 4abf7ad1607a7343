package redisbroker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxws/websocket/broker/redisbroker"
	"github.com/fxws/websocket/internal/blackhole"
	"github.com/fxws/websocket/internal/redistest"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// inbox records what a broker hands its handler.
type inbox struct {
	mu      sync.Mutex
	msgs    []string // "channel|payload"
	changed chan struct{}
}

func newInbox() *inbox { return &inbox{changed: make(chan struct{})} }

func (in *inbox) handle(channel string, payload []byte) {
	in.mu.Lock()
	in.msgs = append(in.msgs, channel+"|"+string(payload))
	close(in.changed)
	in.changed = make(chan struct{})
	in.mu.Unlock()
}

// wait blocks until want has arrived (in any position) or 5 s pass.
func (in *inbox) wait(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		in.mu.Lock()
		for _, m := range in.msgs {
			if m == want {
				in.mu.Unlock()
				return
			}
		}
		ch := in.changed
		in.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			got := in.all()
			t.Fatalf("message %q never arrived; got %d, the last %q", want, len(got), got[max(0, len(got)-5):])
		}
	}
}

func (in *inbox) all() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]string(nil), in.msgs...)
}

func (in *inbox) has(m string) bool {
	for _, x := range in.all() {
		if x == m {
			return true
		}
	}
	return false
}

func startBroker(t *testing.T, client redis.UniversalClient, opts redisbroker.Options) (*redisbroker.Broker, *inbox) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = zaptest.NewLogger(t)
	}
	b := redisbroker.New(client, opts)
	in := newInbox()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Start(ctx, in.handle); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, in
}

// proxiedBroker starts a broker whose Redis client reaches a fresh
// redis-server through a proxy the test can freeze, silence or slow down.
// ro sets the client's options (Addr is the proxy's).
func proxiedBroker(t *testing.T, ro redis.Options, opts redisbroker.Options) (*redisbroker.Broker, *inbox, *redistest.Proxy, *redistest.Server) {
	t.Helper()
	srv := redistest.Start(t)
	proxy := redistest.NewProxy(t, srv.Addr())
	ro.Addr = proxy.Addr()
	rc := redis.NewClient(&ro)
	b, in := startBroker(t, rc, opts)
	// Before the broker's Close: a publish stuck on a silenced proxy
	// would hold that Close for the client's whole ReadTimeout.
	t.Cleanup(func() { _ = rc.Close() })
	return b, in, proxy, srv
}

func TestAudienceModeFollowsSubscriptions(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	rc := srv.Client()
	b, in := startBroker(t, rc, redisbroker.Options{})
	pub := srv.Client()

	if err := b.Subscribe(ctx, "ws:room:a", "ws:user:u1"); err != nil {
		t.Fatal(err)
	}
	// Subscribe returned: Redis has registered the channels.
	n, err := pub.PubSubNumSub(ctx, "ws:room:a", "ws:user:u1", "ws:room:b").Result()
	if err != nil {
		t.Fatal(err)
	}
	if n["ws:room:a"] != 1 || n["ws:user:u1"] != 1 || n["ws:room:b"] != 0 {
		t.Fatalf("numsub after subscribe = %v", n)
	}
	pub.Publish(ctx, "ws:room:b", "not for us")
	pub.Publish(ctx, "ws:room:a", "one")
	in.wait(t, "ws:room:a|one")
	if in.has("ws:room:b|not for us") {
		t.Fatal("received a channel it never subscribed to")
	}
	if err := b.Unsubscribe(ctx, "ws:room:a"); err != nil {
		t.Fatal(err)
	}
	n, _ = pub.PubSubNumSub(ctx, "ws:room:a").Result()
	if n["ws:room:a"] != 0 {
		t.Fatalf("still subscribed after Unsubscribe: %v", n)
	}
	// Its own publishes come back (the helper filters by serverId).
	if err := b.Publish(ctx, "ws:user:u1", []byte("two")); err != nil {
		t.Fatal(err)
	}
	in.wait(t, "ws:user:u1|two")
	if got := b.Channels(); fmt.Sprint(got) != "[ws:user:u1]" {
		t.Fatalf("channels = %v", got)
	}
}

func TestPerChannelOrderAndBatches(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	b, in := startBroker(t, srv.Client(), redisbroker.Options{SubscribeBatch: 7, Workers: 3})
	var chans []string
	for i := 0; i < 50; i++ {
		chans = append(chans, fmt.Sprintf("ws:room:r%d", i))
	}
	if err := b.Subscribe(ctx, chans...); err != nil {
		t.Fatal(err)
	}
	pub := srv.Client()
	const per = 40
	for j := 0; j < per; j++ {
		for _, ch := range chans {
			if err := pub.Publish(ctx, ch, fmt.Sprint(j)).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, ch := range chans {
		in.wait(t, fmt.Sprintf("%s|%d", ch, per-1))
	}
	next := map[string]int{}
	for _, m := range in.all() {
		var ch string
		var j int
		for i := len(m) - 1; i >= 0; i-- {
			if m[i] == '|' {
				ch = m[:i]
				fmt.Sscan(m[i+1:], &j)
				break
			}
		}
		if next[ch] != j {
			t.Fatalf("channel %s: got %d, want %d (order broken)", ch, j, next[ch])
		}
		next[ch]++
	}
}

func TestPatternModeReceivesEverything(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	b, in := startBroker(t, srv.Client(), redisbroker.Options{Mode: redisbroker.ModePattern})
	pub := srv.Client()
	// Room, client and user channels need no command: the patterns hold them.
	if err := b.Subscribe(ctx, "ws:broadcast", "ws:room:a"); err != nil {
		t.Fatal(err)
	}
	n, _ := pub.PubSubNumPat(ctx).Result()
	if n != 3 {
		t.Fatalf("numpat = %d, want 3", n)
	}
	for _, ch := range []string{"ws:broadcast", "ws:room:zzz", "ws:client:c1", "ws:user:u9"} {
		pub.Publish(ctx, ch, "x")
		in.wait(t, ch+"|x")
	}
	pub.Publish(ctx, "other", "x")
	if err := b.Unsubscribe(ctx, "ws:broadcast"); err != nil {
		t.Fatal(err)
	}
	pub.Publish(ctx, "ws:broadcast", "after")
	pub.Publish(ctx, "ws:room:q", "marker")
	in.wait(t, "ws:room:q|marker")
	if in.has("ws:broadcast|after") || in.has("other|x") {
		t.Fatalf("received unsubscribed or foreign channel: %v", in.all())
	}
}

func TestShardedModeSingleNode(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	b, in := startBroker(t, srv.Client(), redisbroker.Options{Mode: redisbroker.ModeSharded})
	if err := b.Subscribe(ctx, "ws:room:a", "ws:broadcast"); err != nil {
		t.Fatal(err)
	}
	pub := srv.Client()
	// A classic PUBLISH does not reach sharded subscribers (documented).
	pub.Publish(ctx, "ws:room:a", "classic")
	pub.SPublish(ctx, "ws:room:a", "sharded")
	in.wait(t, "ws:room:a|sharded")
	if err := b.Publish(ctx, "ws:broadcast", []byte("own")); err != nil {
		t.Fatal(err)
	}
	in.wait(t, "ws:broadcast|own")
	if in.has("ws:room:a|classic") {
		t.Fatal("classic publish reached a sharded subscriber")
	}
}

func TestStartFailsWhenRedisIsAbsent(t *testing.T) {
	srv := redistest.Start(t)
	srv.Kill()
	rc := srv.Client()
	b := redisbroker.New(rc, redisbroker.Options{ReconnectBackoffMin: 10 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := b.Start(ctx, func(string, []byte) {})
	if err == nil {
		t.Fatal("Start succeeded without Redis")
	}
	// go-redis reports only the ping's deadline; the error must also say
	// what stood in the way (here: nothing listens at the address).
	if !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), srv.Addr()) {
		t.Fatalf("Start's error = %q; want it to name the refused dial to %s", err, srv.Addr())
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRestartResubscribesExactly kills Redis, changes the audience while it
// is down, and checks that the new connection holds exactly the current set.
func TestRestartResubscribesExactly(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	b, in := startBroker(t, srv.Client(), redisbroker.Options{
		ReconnectBackoffMin: 20 * time.Millisecond, ReconnectBackoffMax: 200 * time.Millisecond,
		PublishTimeout: 500 * time.Millisecond,
	})
	if err := b.Subscribe(ctx, "ws:broadcast", "ws:room:a", "ws:room:b"); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	waitFor(t, "broker notices the loss", func() bool { return !b.Stats().Connected })
	start := time.Now()
	if err := b.Publish(ctx, "ws:room:a", []byte("lost")); err == nil {
		t.Fatal("publish succeeded with Redis down")
	}
	t.Logf("publish failed after %v", time.Since(start))
	if err := b.Subscribe(ctx, "ws:room:c"); err == nil {
		t.Fatal("subscribe succeeded with Redis down")
	}
	_ = b.Unsubscribe(ctx, "ws:room:b")
	srv.Restart()
	waitFor(t, "reconnect", func() bool { return b.Stats().Connected })
	pub := srv.Client()
	n, err := pub.PubSubNumSub(ctx, "ws:broadcast", "ws:room:a", "ws:room:b", "ws:room:c").Result()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"ws:broadcast": 1, "ws:room:a": 1, "ws:room:b": 0, "ws:room:c": 1}
	for ch, v := range want {
		if n[ch] != v {
			t.Fatalf("after restart numsub = %v, want %v", n, want)
		}
	}
	for _, ch := range []string{"ws:broadcast", "ws:room:a", "ws:room:c"} {
		pub.Publish(ctx, ch, "after")
		in.wait(t, ch+"|after")
	}
	if st := b.Stats(); st.Reconnects < 1 || st.PublishErrors < 1 {
		t.Fatalf("stats = %+v", st)
	}
}

// TestProbeDetectsSilentConnection freezes the subscription connection
// (it stays open but carries nothing) and checks the probe replaces it.
func TestProbeDetectsSilentConnection(t *testing.T) {
	b, in, proxy, srv := proxiedBroker(t, redis.Options{ReadTimeout: 300 * time.Millisecond, ContextTimeoutEnabled: true}, redisbroker.Options{
		ProbeInterval: 100 * time.Millisecond, PingTimeout: 200 * time.Millisecond,
		ReconnectBackoffMin: 10 * time.Millisecond,
	})
	ctx := context.Background()
	if err := b.Subscribe(ctx, "ws:room:a"); err != nil {
		t.Fatal(err)
	}
	proxy.Freeze()
	waitFor(t, "probe failure and reconnect", func() bool {
		st := b.Stats()
		return st.ProbeFailures >= 1 && st.Reconnects >= 1 && st.Connected
	})
	srv.Client().Publish(ctx, "ws:room:a", "alive")
	in.wait(t, "ws:room:a|alive")
}

func TestHandlerPanicDoesNotStopDelivery(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	b := redisbroker.New(srv.Client(), redisbroker.Options{Workers: 1, Logger: zaptest.NewLogger(t)})
	in := newInbox()
	err := b.Start(ctx, func(ch string, p []byte) {
		if string(p) == "boom" {
			panic("boom")
		}
		in.handle(ch, p)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_ = b.Subscribe(ctx, "c")
	pub := srv.Client()
	pub.Publish(ctx, "c", "boom")
	pub.Publish(ctx, "c", "fine")
	in.wait(t, "c|fine")
}

func TestUseAfterClose(t *testing.T) {
	srv := redistest.Start(t)
	b, _ := startBroker(t, srv.Client(), redisbroker.Options{})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if err := b.Publish(context.Background(), "c", nil); err == nil {
		t.Fatal("publish after close succeeded")
	}
	if err := b.Subscribe(context.Background(), "c"); err == nil {
		t.Fatal("subscribe after close succeeded")
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]redisbroker.Mode{"": redisbroker.ModeAudience, "Pattern": redisbroker.ModePattern, "sharded": redisbroker.ModeSharded} {
		got, err := redisbroker.ParseMode(in)
		if err != nil || got != want {
			t.Fatalf("ParseMode(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := redisbroker.ParseMode("psub"); err == nil {
		t.Fatal("ParseMode accepted junk")
	}
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitWithin(t, 10*time.Second, what, cond)
}

// waitWithin polls cond until it holds or d passes.
func waitWithin(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCloseDuringStart(t *testing.T) {
	// A Redis that accepts and never answers: Start keeps trying.
	silent := blackhole.New(t)
	rc := redis.NewClient(&redis.Options{Addr: silent.Addr(), MaxRetries: -1, ContextTimeoutEnabled: true})
	defer rc.Close()
	b := redisbroker.New(rc, redisbroker.Options{ReconnectBackoffMin: 10 * time.Millisecond, PingTimeout: 100 * time.Millisecond})
	errc := make(chan error, 1)
	go func() { errc <- b.Start(context.Background(), func(string, []byte) {}) }()
	select { // Start is trying to reach Redis
	case <-silent.Accepted():
	case <-time.After(5 * time.Second):
		t.Fatal("Start never dialled Redis")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("Start succeeded on a closed broker")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Start did not return after Close")
	}
}

// TestSlowLargeMessageKeepsTheSession sends a message that takes longer to
// arrive than the connection may stay silent. A read deadline that expires
// mid-reply leaves the rest of the reply in the stream, where it would be
// read as the next reply: the message lost, the connection torn down, or
// worse, bytes of a payload taken for a message of their own.
func TestSlowLargeMessageKeepsTheSession(t *testing.T) {
	b, in, proxy, srv := proxiedBroker(t, redis.Options{}, redisbroker.Options{
		ProbeInterval: 100 * time.Millisecond, PingTimeout: 3 * time.Second,
		ReconnectBackoffMin: 10 * time.Millisecond,
	})
	ctx := context.Background()
	if err := b.Subscribe(ctx, "ws:room:a"); err != nil {
		t.Fatal(err)
	}
	// A payload that would parse as messages of its own if read out of
	// place.
	forged := "\r\n*3\r\n$7\r\nmessage\r\n$9\r\nws:room:a\r\n$6\r\nforged\r\n"
	big := strings.Repeat(forged, 256<<10/len(forged))
	proxy.Trickle(4096, 10*time.Millisecond) // about 0.65 s for the whole message
	pub := srv.Client()
	for i := range 3 {
		if err := pub.Publish(ctx, "ws:room:a", big).Err(); err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(ctx, "ws:room:a", fmt.Sprint("after-", i)).Err(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			in.mu.Lock()
			n := len(in.msgs)
			in.mu.Unlock()
			if n >= 2*(i+1) || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(150 * time.Millisecond) // let the connection go silent again
	}
	got := in.all()
	if len(got) != 6 {
		t.Fatalf("got %d messages, want 6 (3 large, 3 small)", len(got))
	}
	for i, m := range got {
		want := "ws:room:a|" + big
		if i%2 == 1 {
			want = fmt.Sprint("ws:room:a|after-", i/2)
		}
		if m != want {
			t.Fatalf("message %d: got %d bytes starting %.40q, want %.40q", i, len(m), m, want)
		}
	}
	if st := b.Stats(); st.Reconnects != 0 || st.ProbeFailures != 0 {
		t.Fatalf("the subscription was rebuilt: %+v", st)
	}
}

// A Ring is refused with an error that says what to give instead; go-redis
// would otherwise panic when the broker opens its subscription connection.
func TestRingIsRefused(t *testing.T) {
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1", "b": "127.0.0.1:2"}})
	defer ring.Close()
	b := redisbroker.New(ring, redisbroker.Options{})
	defer b.Close()
	err := b.Start(context.Background(), func(string, []byte) {})
	if !errors.Is(err, redisbroker.ErrRing) {
		t.Fatalf("Start on a Ring = %v, want ErrRing", err)
	}
}

package redisbroker_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fxws/websocket/broker/redisbroker"
	"github.com/fxws/websocket/emitter"
	"github.com/fxws/websocket/internal/redisinstance"
	"github.com/fxws/websocket/internal/redistest"
	"github.com/fxws/websocket/protocol"
	"github.com/redis/go-redis/v9"
)

// Subscription changes that fail during an outage: the Redis broker keeps
// a change it could not send, so after a failure the helper cannot know
// what the broker holds, and must send the next change of that channel
// whatever it believed.

func outageOpts() redisbroker.Options {
	return redisbroker.Options{
		ReconnectBackoffMin: 20 * time.Millisecond, ReconnectBackoffMax: 100 * time.Millisecond,
		PublishTimeout: 300 * time.Millisecond, ProbeInterval: 200 * time.Millisecond, PingTimeout: 300 * time.Millisecond,
	}
}

func noRetries(o *redis.Options) { o.MaxRetries = -1 }

// A user's last connection closes while Redis is down: the unsubscribe of
// ws:user:<u> fails, but the broker has dropped the channel. The user is
// back before the retry. Once Redis is back, the channel must be
// subscribed again, or the user's messages from other instances and
// emitters are lost for as long as the user stays.
func TestUserChannelRestoredAfterFailedUnsubscribe(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a := redisinstance.Start(t, srv.Client(noRetries), outageOpts())
	userCh := protocol.UserChannel("alice")

	c1, _ := a.Connect(t, "alice")
	if !slices.Contains(a.Broker.Channels(), userCh) {
		t.Fatalf("user channel not held after connected: %v", a.Broker.Channels())
	}
	srv.Kill()
	waitFor(t, "the broker notices the loss", func() bool { return !a.Broker.Stats().Connected })

	_ = c1.Abort()
	waitFor(t, "the unsubscribe attempted", func() bool { return !slices.Contains(a.Broker.Channels(), userCh) })

	c2, c2ID := a.Connect(t, "alice") // the same user back, Redis still down

	srv.Restart()
	waitFor(t, "reconnect", func() bool { st := a.Broker.Stats(); return st.Connected && st.Reconnects >= 1 })
	pub := srv.Client()
	waitFor(t, "the retry of the new client's channel", func() bool {
		n, err := pub.PubSubNumSub(ctx, protocol.ClientChannel(c2ID)).Result()
		return err == nil && n[protocol.ClientChannel(c2ID)] == 1
	})
	a.Connect(t, "sentinel") // its connected comes after every earlier change is applied

	n, err := pub.PubSubNumSub(ctx, userCh).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n[userCh] != 1 {
		t.Errorf("after recovery %s has %d subscribers, want 1 (the broker holds %v)", userCh, n[userCh], a.Broker.Channels())
	}
	e, err := emitter.New(srv.Client(), emitter.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.ToUser(ctx, "alice", "for-alice", 1); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := c2.Expect(wctx, "for-alice"); err != nil {
		t.Errorf("the connected user never got an emitter's message: %v", err)
	}
}

// A client's whole life falls inside an outage: its subscribes fail, but
// the broker keeps them. After recovery nothing of it may stay subscribed.
func TestNoChannelsLeakFromClientsOfAnOutage(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a := redisinstance.Start(t, srv.Client(noRetries), outageOpts())

	srv.Kill()
	waitFor(t, "the broker notices the loss", func() bool { return !a.Broker.Stats().Connected })
	c, id := a.Connect(t, "bob")
	_ = c.Abort()
	waitFor(t, "client removed", func() bool { _, ok := a.Helper.GetClient(id); return !ok })

	srv.Restart()
	waitFor(t, "reconnect", func() bool { st := a.Broker.Stats(); return st.Connected && st.Reconnects >= 1 })
	gone := []string{protocol.ClientChannel(id), protocol.UserChannel("bob"), protocol.RoomChannel(id)}
	pub := srv.Client()
	// The helper retries failed changes every second; wait for them
	// rather than for a fixed time.
	waitFor(t, "the gone client's channels released", func() bool {
		held := a.Broker.Channels()
		n, err := pub.PubSubNumSub(ctx, gone...).Result()
		if err != nil {
			return false
		}
		for _, ch := range gone {
			if n[ch] != 0 || slices.Contains(held, ch) {
				return false
			}
		}
		return true
	})
}

// A caller whose context has ended must fail alone: its write is not cut
// short on the connection every channel shares.
func TestExpiredContextSparesTheSharedSession(t *testing.T) {
	b, _, proxy, _ := proxiedBroker(t, redis.Options{ContextTimeoutEnabled: true},
		redisbroker.Options{ReconnectBackoffMin: 10 * time.Millisecond, PingTimeout: 5 * time.Second, ProbeInterval: 5 * time.Second})
	ctx := context.Background()
	if err := b.Subscribe(ctx, "ws:room:a"); err != nil {
		t.Fatal(err)
	}
	expired, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Millisecond))
	defer cancel()
	if err := b.Subscribe(expired, "ws:room:b"); err == nil {
		t.Error("Subscribe with an expired context succeeded")
	}
	if slices.Contains(b.Channels(), "ws:room:b") {
		t.Error("a Subscribe that failed on its own context changed the set held")
	}
	// A Subscribe whose deadline passes while it waits for Redis's
	// confirmation (not before it writes): Redis's answers trickle in.
	proxy.Trickle(1, 20*time.Millisecond)
	short, cancel2 := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel2()
	if err := b.Subscribe(short, "ws:room:c"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Subscribe past its deadline: %v, want a deadline error", err)
	}
	proxy.Trickle(0, 0)
	if err := b.Subscribe(ctx, "ws:room:d"); err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st.Sessions != 1 || st.Reconnects != 0 {
		t.Errorf("a caller's context tore down the shared subscription session: %+v", st)
	}
}

// A Subscribe queued behind one stuck on a silent connection gives up when
// its own context ends.
func TestSubscribeHonoursContextWhileQueued(t *testing.T) {
	b, _, proxy, _ := proxiedBroker(t, redis.Options{}, redisbroker.Options{
		ProbeInterval: time.Second, PingTimeout: time.Second, ReconnectBackoffMin: 10 * time.Millisecond,
	})
	ctx := context.Background()
	if err := b.Subscribe(ctx, "ws:room:a"); err != nil {
		t.Fatal(err)
	}
	proxy.Freeze()
	first := make(chan error, 1)
	go func() {
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		first <- b.Subscribe(c, "ws:room:b")
	}()
	waitFor(t, "the first Subscribe to hold the turn", func() bool { return slices.Contains(b.Channels(), "ws:room:b") })
	c, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	err := b.Subscribe(c, "ws:room:c")
	if err == nil {
		t.Error("Subscribe queued behind a stuck one succeeded")
	}
	// It gave up on its context, not with the session's failure: its
	// channel was never added.
	if slices.Contains(b.Channels(), "ws:room:c") {
		t.Errorf("a Subscribe that gave up while queued changed the set held (err %v)", err)
	}
	<-first // ends when the probe gives the silent connection up
}

// A server-side join of a room new to the instance subscribes in the
// background; SyncSubscriptions waits for it, after which a send from
// another instance cannot miss the client.
func TestSyncSubscriptionsAfterJoinRoom(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a := redisinstance.Start(t, srv.Client(), redisbroker.Options{})
	b := redisinstance.Start(t, srv.Client(), redisbroker.Options{})
	c, id := a.Connect(t, "u")
	room := "fresh-room"
	if !a.Helper.JoinRoom(id, room) {
		t.Fatal("JoinRoom refused")
	}
	if err := a.Helper.SyncSubscriptions(ctx); err != nil {
		t.Fatal(err)
	}
	n, err := srv.Client().PubSubNumSub(ctx, protocol.RoomChannel(room)).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n[protocol.RoomChannel(room)] != 1 {
		t.Fatalf("%s has %d subscribers right after SyncSubscriptions, want 1", room, n[protocol.RoomChannel(room)])
	}
	if err := b.Helper.Send(ctx, room, "to-room", 1); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := c.Expect(wctx, "to-room"); err != nil {
		t.Fatalf("the room's message from the other instance: %v", err)
	}
}

// With Redis gone silent (no reset, no answer), publishes queued behind the
// stuck pipeline return within PublishTimeout, not when the client's read
// timeout finally ends the stuck one.
func TestPublishBoundedWhileRedisIsSilent(t *testing.T) {
	const readTimeout = 10 * time.Second
	b, _, proxy, _ := proxiedBroker(t, redis.Options{ReadTimeout: readTimeout, MaxRetries: -1}, redisbroker.Options{PublishTimeout: 200 * time.Millisecond})
	if err := b.Publish(context.Background(), "ws:broadcast", []byte("warm")); err != nil {
		t.Fatal(err)
	}
	proxy.Silence()
	start := time.Now()
	errs := make(chan error, 20)
	for i := 0; i < cap(errs); i++ {
		go func() { errs <- b.Publish(context.Background(), "ws:broadcast", []byte("x")) }()
	}
	for i := 0; i < cap(errs); i++ {
		if err := <-errs; err == nil {
			t.Error("a publish to a silent Redis succeeded")
		}
	}
	// Not a measure of speed: the bound tells the two designs apart by
	// far (before, the callers waited for the stuck pipeline's 10 s).
	if took := time.Since(start); took > readTimeout/2 {
		t.Errorf("publishes to a silent Redis returned after %v: they waited for the stuck pipeline", took)
	}
}

// With Redis gone silent, Close returns within about PublishTimeout even
// though a publish is stuck in its pipeline and the reconnect is stuck in
// its PING: the client, made without ContextTimeoutEnabled, would hold
// both for its whole ReadTimeout.
func TestCloseBoundedWhileRedisIsSilent(t *testing.T) {
	const readTimeout = 10 * time.Second
	b, _, proxy, _ := proxiedBroker(t, redis.Options{ReadTimeout: readTimeout, MaxRetries: -1}, redisbroker.Options{
		PublishTimeout: 200 * time.Millisecond, PingTimeout: 300 * time.Millisecond,
		ProbeInterval: 100 * time.Millisecond, ReconnectBackoffMin: 10 * time.Millisecond,
	})
	ctx := context.Background()
	if err := b.Subscribe(ctx, "ws:room:a"); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, "ws:broadcast", []byte("warm")); err != nil {
		t.Fatal(err)
	}
	proxy.Silence()
	if err := b.Publish(ctx, "ws:broadcast", []byte("stuck")); err == nil {
		t.Fatal("a publish to a silent Redis succeeded")
	}
	// The probe finds the session dead; the supervisor's reconnect then
	// waits on its PING.
	waitFor(t, "the probe to fail", func() bool { return b.Stats().ProbeFailures >= 1 })
	time.Sleep(100 * time.Millisecond) // past ReconnectBackoffMin, into the PING
	start := time.Now()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// Not a measure of speed: the bound tells the two designs apart by
	// far (before, Close waited for the client's 10 s read timeout).
	if took := time.Since(start); took > readTimeout/2 {
		t.Errorf("Close with Redis silent took %v", took)
	}
}

// However long Redis was away, the subscriptions are back about a second
// after it is (the backoff's default cap): publishes from elsewhere reach
// nobody here until then. With the earlier cap of 5 s, a long outage left
// a gap of up to 5 s after Redis came back (a user trial lost 16 sends
// that way).
func TestResubscribedSoonAfterALongOutage(t *testing.T) {
	srv := redistest.Start(t)
	opts := redisbroker.Options{PublishTimeout: 300 * time.Millisecond, PingTimeout: 300 * time.Millisecond}
	a := redisinstance.Start(t, srv.Client(noRetries), opts)
	if !a.Broker.Stats().Connected {
		t.Fatal("not connected")
	}
	srv.Kill()
	waitFor(t, "the broker notices the loss", func() bool { return !a.Broker.Stats().Connected })
	time.Sleep(3 * time.Second) // the backoff reaches its cap
	back := time.Now()
	srv.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for !a.Broker.Stats().Connected {
		if time.Now().After(deadline) {
			t.Fatal("never resubscribed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	after := time.Since(back)
	t.Logf("resubscribed %v after Redis was back", after.Round(time.Millisecond))
	// 1 s of backoff at most, plus the restart's own start and the
	// connect: the bound is 2 s.
	if after > 2*time.Second {
		t.Errorf("resubscribed %v after Redis was back, want within 2 s", after)
	}
}

// Once Redis is found unreachable (the subscription connection is lost and
// a new one is refused), publishes fail at once with ErrUnreachable, not
// each after the client's own dial retries (1.7 s with go-redis's
// defaults: a user trial's relay handler held each client's messages that
// long), but one at a time, 250 ms after the last, which finds Redis back;
// once it is, they go through again. The client here keeps go-redis's
// default retries.
func TestPublishFailsAtOnceWhileRedisIsUnreachable(t *testing.T) {
	srv := redistest.Start(t)
	a := redisinstance.Start(t, srv.Client(), redisbroker.Options{})
	ctx := context.Background()
	if err := a.Broker.Publish(ctx, "ws:broadcast", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if !a.Broker.Connected() || !a.Helper.Stats().BrokerConnected {
		t.Fatal("not connected before the outage")
	}
	srv.Kill()
	waitFor(t, "Redis found unreachable", func() bool {
		_ = a.Broker.Publish(ctx, "ws:broadcast", []byte("{}"))
		return a.Broker.Stats().Unreachable
	})
	if a.Broker.Connected() || a.Helper.Stats().BrokerConnected {
		t.Fatal("connected while Redis is unreachable (readiness checks go by it)")
	}
	// One publish in 250 ms goes through to find Redis back; the rest
	// fail at once.
	unreachable := 0
	for range 5 {
		err := a.Broker.Publish(ctx, "ws:broadcast", []byte("{}"))
		var opErr *net.OpError
		if errors.Is(err, redisbroker.ErrUnreachable) && errors.As(err, &opErr) {
			unreachable++
		}
	}
	if unreachable < 4 {
		t.Fatalf("%d of 5 publishes in a row while unreachable failed with ErrUnreachable (and the connection's error), want 4 at least", unreachable)
	}
	srv.Restart()
	waitFor(t, "publishes through again", func() bool {
		return a.Broker.Publish(ctx, "ws:broadcast", []byte("{}")) == nil
	})
	waitFor(t, "connected again", func() bool { return a.Helper.Stats().BrokerConnected })
}

// A subscription connection killed while Redis is up is not taken for an
// unreachable Redis: no publish meanwhile fails.
func TestLostSubscriptionWithRedisUpFailsNoPublish(t *testing.T) {
	srv := redistest.Start(t)
	a := redisinstance.Start(t, srv.Client(), redisbroker.Options{})
	admin := srv.Client()
	defer admin.Close()
	ctx := context.Background()
	for range 5 {
		sessions := a.Broker.Stats().Sessions
		if err := admin.ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
			t.Fatal(err)
		}
		for a.Broker.Stats().Sessions == sessions {
			if err := a.Broker.Publish(ctx, "ws:broadcast", []byte("{}")); err != nil {
				t.Fatalf("publish while the subscription was rebuilt, Redis up: %v", err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if a.Broker.Stats().Unreachable {
		t.Fatal("marked unreachable with Redis up")
	}
}

// A Redis user without SUBSCRIBE, or without PUBLISH, fails Start at
// once, saying so: without SUBSCRIBE it was retried until the start
// context ended with nothing but "deadline exceeded"; without PUBLISH the
// instance started, looked ready, and every send failed (both found in an
// operations trial).
func TestStartFailsAtOnceOnAnACLWithoutSubscribeOrPublish(t *testing.T) {
	for _, tc := range []struct {
		lacks  string
		grants []any
	}{
		{"SUBSCRIBE", []any{"+publish"}},
		{"PUBLISH", []any{"+subscribe", "+unsubscribe", "+psubscribe", "+punsubscribe"}},
	} {
		srv := redistest.Start(t)
		admin := srv.Client()
		ctx := context.Background()
		rule := append([]any{"ACL", "SETUSER", "fxws", "on", ">secret", "resetchannels", "&ws:*", "-@all", "+@connection"}, tc.grants...)
		if err := admin.Do(ctx, rule...).Err(); err != nil {
			t.Fatal(err)
		}
		_ = admin.Close()
		rdb := srv.Client(func(o *redis.Options) { o.Username, o.Password = "fxws", "secret" })
		b := redisbroker.New(rdb, redisbroker.Options{})
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := b.Start(sctx, func(string, []byte) {})
		if err == nil || sctx.Err() != nil || !strings.Contains(err.Error(), "NOPERM") {
			t.Errorf("Start without %s: %v (context %v), want the NOPERM answer at once", tc.lacks, err, sctx.Err())
		}
		cancel()
		_ = b.Close()
		_ = rdb.Close()
	}
}

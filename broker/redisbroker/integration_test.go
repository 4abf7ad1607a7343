package redisbroker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fxws/websocket/broker/redisbroker"
	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/internal/redisinstance"
	"github.com/fxws/websocket/internal/redistest"
	"github.com/fxws/websocket/protocol"
	"github.com/redis/go-redis/v9"
)

// expectData waits for event on c and checks its data.
func expectData(t *testing.T, c *fxtest.Client, who, event, want string) {
	t.Helper()
	m, err := c.Expect(context.Background(), event)
	if err != nil {
		t.Fatalf("%s: %v", who, err)
	}
	if string(m.Data) != want {
		t.Fatalf("%s: %s data = %s, want %s", who, event, m.Data, want)
	}
}

// expectNone checks that c got no event before marker (which must arrive
// after it on the same channel, so order proves absence).
func expectNone(t *testing.T, c *fxtest.Client, who, event, marker string) {
	t.Helper()
	if _, err := c.Expect(context.Background(), marker); err != nil {
		t.Fatalf("%s: marker: %v", who, err)
	}
	for _, m := range c.Messages() {
		if m.Event == event {
			t.Fatalf("%s: got %s, which it should not have: %s", who, event, m.Data)
		}
	}
}

// roomPair is two instances on client's Redis, each with one client in
// "room" (users u1 on a, u2 on b), a first message already across.
type roomPair struct {
	a, b          *redisinstance.Instance
	local, remote *fxtest.Client // on a and on b
}

func newRoomPair(t *testing.T, newClient func() redis.UniversalClient, opts redisbroker.Options) roomPair {
	t.Helper()
	p := roomPair{a: redisinstance.Start(t, newClient(), opts), b: redisinstance.Start(t, newClient(), opts)}
	var localID, remoteID string
	p.local, localID = p.a.Connect(t, "u1")
	p.remote, remoteID = p.b.Connect(t, "u2")
	p.a.Join(t, localID, "room")
	p.b.Join(t, remoteID, "room")
	if err := p.a.Helper.Send(context.Background(), "room", "before", 0); err != nil {
		t.Fatal(err)
	}
	expectData(t, p.remote, "remote", "before", `0`)
	expectData(t, p.local, "local", "before", `0`)
	return p
}

// crossesAgain sends from a to the room until runs sends in a row have
// crossed to b, within d (after a failover, sends may fail or miss the
// other instance for a while). Local delivery must never stop.
func (p roomPair) crossesAgain(t *testing.T, runs int, d time.Duration) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(d)
	for i, run := 0, 0; run < runs; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("sends did not cross instances reliably within %v (a: %+v, b: %+v)", d, p.a.Broker.Stats(), p.b.Broker.Stats())
		}
		err := p.a.Helper.Send(ctx, "room", "probe", i)
		expectData(t, p.local, "local", "probe", fmt.Sprint(i))
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		m, rerr := p.remote.Expect(pctx, "probe")
		cancel()
		run++
		if err != nil || rerr != nil || string(m.Data) != fmt.Sprint(i) {
			run = 0
		}
	}
}

// nothingLost sends n messages from a to the room, each of which must
// succeed and reach both clients in order.
func (p roomPair) nothingLost(t *testing.T, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if err := p.a.Helper.Send(context.Background(), "room", "after", i); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	for i := 0; i < n; i++ {
		expectData(t, p.remote, "remote", "after", fmt.Sprint(i))
		expectData(t, p.local, "local", "after", fmt.Sprint(i))
	}
}

// fleetDelivery is the cross-instance delivery suite: two instances on
// one Redis deliver to each other for every target type and honour
// exclude lists.
func fleetDelivery(t *testing.T, newClient func() redis.UniversalClient, opts redisbroker.Options) {
	ctx := context.Background()
	a := redisinstance.Start(t, newClient(), opts)
	b := redisinstance.Start(t, newClient(), opts)

	alice1, alice1ID := a.Connect(t, "alice")
	alice2, _ := b.Connect(t, "alice")
	bob, bobID := b.Connect(t, "bob")
	carol, carolID := b.Connect(t, "carol")
	a.Join(t, alice1ID, "r1")
	b.Join(t, bobID, "r1")
	b.Join(t, carolID, "r1")

	// Broadcast (public send without destination).
	if err := a.Helper.Send(ctx, "", "news", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	for who, c := range map[string]*fxtest.Client{"alice1": alice1, "alice2": alice2, "bob": bob, "carol": carol} {
		expectData(t, c, who, "news", `{"n":1}`)
	}

	// Room: a local member and the members on the other instance.
	if err := a.Helper.Send(ctx, "r1", "room-msg", "hi"); err != nil {
		t.Fatal(err)
	}
	for who, c := range map[string]*fxtest.Client{"alice1": alice1, "bob": bob, "carol": carol} {
		expectData(t, c, who, "room-msg", `"hi"`)
	}

	// Client on another instance: published as a room named by its id
	// (its own-id room), as the original does.
	if err := a.Helper.Send(ctx, bobID, "direct", 1); err != nil {
		t.Fatal(err)
	}
	expectData(t, bob, "bob", "direct", `1`)
	// Client envelope (ws:client:<id>), as a local-client send publishes it.
	if err := b.Helper.Publish(ctx, protocol.TypeClient, alice1ID, "direct2", 2); err != nil {
		t.Fatal(err)
	}
	expectData(t, alice1, "alice1", "direct2", `2`)

	// User: every connection of the user on every instance.
	if err := a.Helper.SendToUser(ctx, "alice", "for-alice", true); err != nil {
		t.Fatal(err)
	}
	expectData(t, alice1, "alice1", "for-alice", `true`)
	expectData(t, alice2, "alice2", "for-alice", `true`)

	// Exclude lists, room and broadcast.
	if err := a.Helper.Publish(ctx, protocol.TypeRoom, "r1", "ex-room", "x", carolID); err != nil {
		t.Fatal(err)
	}
	if err := a.Helper.Publish(ctx, protocol.TypeRoom, "r1", "marker-room", "m"); err != nil {
		t.Fatal(err)
	}
	expectData(t, bob, "bob", "ex-room", `"x"`)
	expectNone(t, carol, "carol", "ex-room", "marker-room")
	if err := a.Helper.Publish(ctx, protocol.TypeBroadcast, "", "ex-all", "y", bobID, alice1ID); err != nil {
		t.Fatal(err)
	}
	if err := a.Helper.Publish(ctx, protocol.TypeBroadcast, "", "marker-all", "m"); err != nil {
		t.Fatal(err)
	}
	expectData(t, carol, "carol", "ex-all", `"y"`)
	expectData(t, alice2, "alice2", "ex-all", `"y"`)
	expectNone(t, bob, "bob", "ex-all", "marker-all")

	// An instance ignores its own envelopes: alice1 got each broadcast once.
	if err := a.Helper.Send(ctx, "", "once", 1); err != nil {
		t.Fatal(err)
	}
	if err := a.Helper.Send(ctx, "", "once-marker", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := alice1.Expect(ctx, "once-marker"); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range alice1.Messages() {
		if m.Event == "once" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("alice1 got %d copies of its own instance's broadcast", n)
	}
}

func TestFleetDeliveryAudience(t *testing.T) {
	srv := redistest.Start(t)
	fleetDelivery(t, func() redis.UniversalClient { return srv.Client() }, redisbroker.Options{})
}

func TestFleetDeliveryPattern(t *testing.T) {
	srv := redistest.Start(t)
	fleetDelivery(t, func() redis.UniversalClient { return srv.Client() }, redisbroker.Options{Mode: redisbroker.ModePattern})
}

func TestFleetDeliveryClusterSharded(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	fleetDelivery(t, func() redis.UniversalClient { return cl.Client() }, redisbroker.Options{Mode: redisbroker.ModeSharded})
}

func TestFleetDeliveryClusterClassic(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	fleetDelivery(t, func() redis.UniversalClient { return cl.Client() }, redisbroker.Options{})
}

// TestShardedSpreadsOverNodes checks that sharded subscriptions land on the
// node owning each channel: one subscription connection per master.
func TestShardedSpreadsOverNodes(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	b, in := startBroker(t, cl.Client(), redisbroker.Options{Mode: redisbroker.ModeSharded})
	ctx := context.Background()
	var chans []string
	for i := 0; i < 60; i++ {
		chans = append(chans, fmt.Sprintf("ws:room:r%d", i))
	}
	if err := b.Subscribe(ctx, chans...); err != nil {
		t.Fatal(err)
	}
	nodesWithSubs := 0
	for _, node := range cl.Nodes {
		c := node.Client()
		n, err := c.Do(ctx, "PUBSUB", "SHARDNUMSUB").Result()
		_ = n
		if err != nil {
			t.Fatal(err)
		}
		list, err := c.Do(ctx, "PUBSUB", "SHARDCHANNELS").StringSlice()
		if err != nil {
			t.Fatal(err)
		}
		if len(list) > 0 {
			nodesWithSubs++
		}
	}
	if nodesWithSubs != 3 {
		t.Fatalf("sharded channels on %d nodes, want 3", nodesWithSubs)
	}
	pub := cl.Client()
	for _, ch := range chans {
		if err := pub.SPublish(ctx, ch, "s").Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, ch := range chans {
		in.wait(t, ch+"|s")
	}
}

// TestJunkEnvelopesHarmNothing publishes malformed envelopes on every
// channel an instance listens on; clients stay connected, the junk is
// counted, and a good envelope still arrives after it.
func TestJunkEnvelopesHarmNothing(t *testing.T) {
	srv := redistest.Start(t)
	for _, mode := range []redisbroker.Mode{redisbroker.ModeAudience, redisbroker.ModePattern} {
		t.Run(mode.String(), func(t *testing.T) {
			ctx := context.Background()
			a := redisinstance.Start(t, srv.Client(), redisbroker.Options{Mode: mode})
			c, id := a.Connect(t, "u1")
			a.Join(t, id, "r1")
			junk := []string{
				``, `not json`, `[]`, `null`, `42`, `"str"`, `{`, `{"serverId":1,"event":"e"}`,
				`{"serverId":"x"}`, `{"event":"e"}`, `{"serverId":"x","event":7}`,
				`{"serverId":"x","event":"e","type":"bogus"}`, `{"serverId":"x","event":"e","type":"room"}`,
				`{"serverId":"x","event":"e","type":"client","target":42}`,
				`{"serverId":"x","event":"e","type":"room","target":"ws:internal:broadcast"}`,
				`{"serverId":"x","event":"tolerated","type":"broadcast","exclude":"notalist"}`,
				`{"serverId":"x","event":"e","type":"broadcast","data":` + string(make([]byte, 0)) + `}`,
				"\xff\xfe",
			}
			pub := srv.Client()
			channels := []string{protocol.ChannelBroadcast, protocol.RoomChannel("r1"), protocol.ClientChannel(id), protocol.UserChannel("u1")}
			before := a.Helper.Stats().BadEnvelopes
			for _, ch := range channels {
				for _, j := range junk {
					if err := pub.Publish(ctx, ch, j).Err(); err != nil {
						t.Fatal(err)
					}
				}
			}
			for i, ch := range channels {
				typ := map[int]string{0: "broadcast", 1: "room", 2: "client", 3: "user"}[i]
				target := map[int]string{0: "", 1: "r1", 2: id, 3: "u1"}[i]
				good, _ := json.Marshal(protocol.Envelope{ServerID: "other", Type: protocol.MessageType(typ), Target: target, Event: "good-" + typ, Data: json.RawMessage(`1`)})
				pub.Publish(ctx, ch, good)
				expectData(t, c, "client", "good-"+typ, `1`)
			}
			if c.Closed() {
				t.Fatal("client closed by junk")
			}
			for _, m := range c.Messages() {
				if m.Event == "e" {
					t.Fatalf("junk envelope delivered: %s", m.Data)
				}
			}
			if got := a.Helper.Stats().BadEnvelopes - before; got < uint64(len(channels)*10) {
				t.Fatalf("bad envelopes counted: %d", got)
			}
		})
	}
}

// TestRedisRestartMidRun kills Redis under a running fleet: local delivery
// goes on and sends report the publish failure; after the restart both
// instances re-subscribe and no message published after that is lost.
func TestRedisRestartMidRun(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	opts := redisbroker.Options{
		ReconnectBackoffMin: 20 * time.Millisecond, ReconnectBackoffMax: 200 * time.Millisecond,
		PublishTimeout: 300 * time.Millisecond, ProbeInterval: 200 * time.Millisecond, PingTimeout: 300 * time.Millisecond,
	}
	fast := func(o *redis.Options) { o.MaxRetries = -1 }
	p := newRoomPair(t, func() redis.UniversalClient { return srv.Client(fast) }, opts)
	a, b, local, remote := p.a, p.b, p.local, p.remote

	srv.Kill()
	waitFor(t, "both brokers notice", func() bool {
		return !a.Broker.Stats().Connected && !b.Broker.Stats().Connected
	})
	for i := 0; i < 5; i++ {
		err := a.Helper.Send(ctx, "room", "down", i)
		if err == nil {
			t.Fatal("Send reported no error with Redis down")
		}
		expectData(t, local, "local", "down", fmt.Sprint(i)) // local delivery goes on
	}
	if err := a.Helper.SendToUser(ctx, "u1", "down-user", 1); err == nil {
		t.Fatal("SendToUser reported no error with Redis down")
	}
	expectData(t, local, "local", "down-user", `1`)
	if st := a.Helper.Stats(); st.PublishErrors < 6 {
		t.Fatalf("publish errors counted: %d", st.PublishErrors)
	}
	// A client joining during the outage is subscribed after recovery.
	late, lateID := b.Connect(t, "u3")
	b.Helper.JoinRoom(lateID, "late-room")

	srv.Restart()
	waitFor(t, "both brokers re-subscribed", func() bool {
		sa, sb := a.Broker.Stats(), b.Broker.Stats()
		return sa.Connected && sb.Connected && sa.Reconnects >= 1 && sb.Reconnects >= 1
	})
	waitFor(t, "the late client's channels", func() bool {
		n, err := srv.Client().PubSubNumSub(ctx, protocol.RoomChannel("late-room"), protocol.UserChannel("u3")).Result()
		return err == nil && n[protocol.RoomChannel("late-room")] == 1 && n[protocol.UserChannel("u3")] == 1
	})
	const n = 200
	for i := 0; i < n; i++ {
		if err := a.Helper.Send(ctx, "room", "after", i); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		expectData(t, remote, "remote", "after", fmt.Sprint(i))
		expectData(t, local, "local", "after", fmt.Sprint(i))
	}
	if err := a.Helper.Send(ctx, "late-room", "late", 1); err != nil {
		t.Fatal(err)
	}
	expectData(t, late, "late", "late", `1`)
	if err := a.Helper.SendToUser(ctx, "u3", "late-user", 1); err != nil {
		t.Fatal(err)
	}
	expectData(t, late, "late", "late-user", `1`)
	for _, m := range remote.Messages() {
		if m.Event == "down" {
			t.Fatalf("remote got a message published while Redis was down: %s", m.Data)
		}
	}
}

// The fleet works for a Redis user allowed no more than the README's ACL:
// the connection and pub/sub commands, on channels under ws: only (and, for
// pattern mode, whose PSUBSCRIBE patterns Redis matches literally against
// Sharded mode on a cluster under the documented ACL (with the cluster's
// +cluster|slots): the check of a node's role before subscribing there
// uses HELLO, in @connection, as ROLE is an @admin command the ACL
// refuses (the first version of that check used ROLE, and no master
// could be subscribed on).
func TestShardedClusterUnderTheDocumentedACL(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	ctx := context.Background()
	for _, n := range cl.Nodes {
		if err := n.Client().Do(ctx, "ACL", "SETUSER", "fxws", "on", ">secret", "resetkeys", "resetchannels",
			"&ws:*", "&ws:room:*", "&ws:client:*", "&ws:user:*", "-@all", "+@connection", "+@pubsub", "+cluster|slots").Err(); err != nil {
			t.Fatal(err)
		}
	}
	user := func(o *redis.ClusterOptions) { o.Username, o.Password = "fxws", "secret" }
	fleetDelivery(t, func() redis.UniversalClient { return cl.Client(user) }, redisbroker.Options{Mode: redisbroker.ModeSharded})
}

// the allowed ones, its three patterns).
func TestFleetDeliveryUnderTheDocumentedACL(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	admin := srv.Client()
	if err := admin.Do(ctx, "ACL", "SETUSER", "fxws", "on", ">secret", "resetkeys", "resetchannels",
		"&ws:*", "&ws:room:*", "&ws:client:*", "&ws:user:*", "-@all", "+@connection", "+@pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	user := func(o *redis.Options) { o.Username, o.Password = "fxws", "secret" }
	// The user may not touch keys: the ACL is the one in force.
	if err := srv.Client(user).Set(ctx, "k", "v", 0).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("SET as the restricted user: %v, want NOPERM", err)
	}
	opts := redisbroker.Options{ProbeInterval: 50 * time.Millisecond}
	for _, mode := range []redisbroker.Mode{redisbroker.ModeAudience, redisbroker.ModePattern} {
		t.Run(mode.String(), func(t *testing.T) {
			opts.Mode = mode
			fleetDelivery(t, func() redis.UniversalClient { return srv.Client(user) }, opts)
		})
	}
	// The loopback probes (on ws:client:…) pass the ACL too.
	publishes := func() int {
		stats, err := admin.Do(ctx, "INFO", "commandstats").Text()
		if err != nil {
			t.Fatal(err)
		}
		_, rest, found := strings.Cut(stats, "cmdstat_publish:calls=")
		calls, _, _ := strings.Cut(rest, ",")
		n, _ := strconv.Atoi(calls)
		if !found {
			return 0
		}
		return n
	}
	for _, mode := range []redisbroker.Mode{redisbroker.ModeAudience, redisbroker.ModePattern} {
		b, _ := startBroker(t, srv.Client(user), redisbroker.Options{Mode: mode, ProbeInterval: 20 * time.Millisecond, PingTimeout: time.Second})
		before := publishes()
		waitFor(t, "five probes", func() bool { return publishes() >= before+5 })
		if st := b.Stats(); st.ProbeFailures != 0 || st.Sessions != 1 {
			t.Fatalf("%v under the ACL: %+v, want no probe failure and one session", mode, st)
		}
		_ = b.Close()
	}
}

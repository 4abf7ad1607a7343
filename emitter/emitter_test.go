package emitter_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fxws/websocket/broker/redisbroker"
	"github.com/fxws/websocket/emitter"
	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/internal/blackhole"
	"github.com/fxws/websocket/internal/redisinstance"
	"github.com/fxws/websocket/internal/redistest"
	"github.com/fxws/websocket/protocol"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"
	fxt "go.uber.org/fx/fxtest"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestEncodeMatchesOriginal compares with what the original emitter's
// JSON.stringify produces for the same calls (captured from Bun).
func TestEncodeMatchesOriginal(t *testing.T) {
	cases := []struct {
		typ     protocol.MessageType
		target  string
		data    any
		exclude []string
		want    string
	}{
		{protocol.TypeClient, "c1", map[string]string{"a": "<b>&"}, nil,
			`{"serverId":"emitter","type":"client","target":"c1","event":"ev","data":{"a":"<b>&"}}`},
		{protocol.TypeUser, "u1", []any{1, "é", nil}, nil,
			`{"serverId":"emitter","type":"user","target":"u1","event":"ev","data":[1,"é",null]}`},
		{protocol.TypeRoom, "r1", "x", []string{"c2", "c3"},
			`{"serverId":"emitter","type":"room","target":"r1","event":"ev","data":"x","exclude":["c2","c3"]}`},
		{protocol.TypeBroadcast, "", nil, nil,
			`{"serverId":"emitter","type":"broadcast","event":"ev"}`},
		{protocol.TypeRoom, "r", json.RawMessage(`null`), nil,
			`{"serverId":"emitter","type":"room","target":"r","event":"ev","data":null}`},
		// Ours: the latest key of a protocol.Latest, in a member the
		// original's servers ignore.
		{protocol.TypeRoom, "r", protocol.Latest{Key: "cpu", Data: 0.5}, []string{"c2"},
			`{"serverId":"emitter","type":"room","target":"r","event":"ev","data":0.5,"exclude":["c2"],"latest":"cpu"}`},
	}
	for _, c := range cases {
		got, err := emitter.Encode(c.typ, c.target, "ev", c.data, c.exclude)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != c.want {
			t.Errorf("Encode = %s\nwant     %s", got, c.want)
		}
		env, err := protocol.DecodeEnvelope(got)
		if err != nil || env.ServerID != protocol.EmitterServerID {
			t.Errorf("decode %s: %+v %v", got, env, err)
		}
	}
}

func TestBadInput(t *testing.T) {
	if _, err := emitter.New(nil, emitter.Options{}); err == nil {
		t.Fatal("New accepted a nil client")
	}
	srv := redistest.Start(t)
	e, err := emitter.New(srv.Client(), emitter.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for name, err := range map[string]error{
		"empty client": e.ToClient(ctx, "", "ev", 1),
		"empty user":   e.ToUser(ctx, "", "ev", 1),
		"empty room":   e.ToRoom(ctx, "", "ev", 1),
		"empty event":  e.Broadcast(ctx, "", 1),
		"bad data":     e.Broadcast(ctx, "ev", func() {}),
		"bad raw":      e.Broadcast(ctx, "ev", json.RawMessage(`{`)),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	// Each error names the method called.
	if err := e.ToUser(ctx, "u", "", 1); err == nil || !strings.Contains(err.Error(), "emitter: ToUser: empty event") {
		t.Errorf("empty event in ToUser: %v", err)
	}
	srv.Kill()
	if err := e.Broadcast(ctx, "ev", 1); err == nil {
		t.Fatal("publish with Redis down reported no error")
	}
}

func expect(t *testing.T, c *fxtest.Client, who, event, data string) {
	t.Helper()
	m, err := c.Expect(context.Background(), event)
	if err != nil {
		t.Fatalf("%s: %v", who, err)
	}
	if string(m.Data) != data {
		t.Fatalf("%s: %s = %s, want %s", who, event, m.Data, data)
	}
}

func reachesBothInstances(t *testing.T, newClient func() redis.UniversalClient, mode redisbroker.Mode, sharded bool) {
	ctx := context.Background()
	a := redisinstance.Start(t, newClient(), redisbroker.Options{Mode: mode})
	b := redisinstance.Start(t, newClient(), redisbroker.Options{Mode: mode})
	ca, idA := a.Connect(t, "alice")
	cb, idB := b.Connect(t, "alice")
	cc, idC := b.Connect(t, "carol")
	a.Join(t, idA, "jobs")
	b.Join(t, idB, "jobs")
	b.Join(t, idC, "jobs")

	e, err := emitter.New(newClient(), emitter.Options{Sharded: sharded})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Audience: alice is on both instances; unknown where Redis cannot say.
	want := 2
	if _, onCluster := newClient().(*redis.ClusterClient); mode == redisbroker.ModePattern || onCluster && !sharded {
		want = -1
	}
	for _, in := range []*redisinstance.Instance{a, b} {
		if err := in.Helper.SyncSubscriptions(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := e.Audience(ctx, protocol.TypeUser, "alice"); err != nil || n != want {
		t.Fatalf("Audience of user alice: %d %v, want %d", n, err, want)
	}
	if err := e.ToClient(ctx, idA, "to-a", 1); err != nil {
		t.Fatal(err)
	}
	if err := e.ToClient(ctx, idB, "to-b", 2); err != nil {
		t.Fatal(err)
	}
	expect(t, ca, "a", "to-a", `1`)
	expect(t, cb, "b", "to-b", `2`)
	if err := e.ToUser(ctx, "alice", "to-alice", "x"); err != nil {
		t.Fatal(err)
	}
	expect(t, ca, "a", "to-alice", `"x"`)
	expect(t, cb, "b", "to-alice", `"x"`)
	if err := e.ToRoom(ctx, "jobs", "progress", map[string]int{"pct": 50}, idC); err != nil {
		t.Fatal(err)
	}
	if err := e.ToRoom(ctx, "jobs", "marker", 0); err != nil {
		t.Fatal(err)
	}
	expect(t, ca, "a", "progress", `{"pct":50}`)
	expect(t, cb, "b", "progress", `{"pct":50}`)
	expect(t, cc, "c", "marker", `0`) // same channel: had progress come, it came first
	for _, m := range cc.Messages() {
		if m.Event == "progress" {
			t.Fatal("excluded client got the room message")
		}
	}
	if err := e.Broadcast(ctx, "all", true); err != nil {
		t.Fatal(err)
	}
	for who, c := range map[string]*fxtest.Client{"a": ca, "b": cb, "c": cc} {
		expect(t, c, who, "all", `true`)
	}
	for _, c := range []*fxtest.Client{ca, cb, cc} {
		for _, m := range c.Messages() {
			if m.Event == "to-a" || m.Event == "to-b" {
				t.Fatalf("client-targeted message reached the wrong client: %v", m)
			}
		}
	}
	// A ban from a worker closes the user's connections on both instances,
	// but those it spares.
	if err := e.DisconnectUser(ctx, "alice", 4100, "banned", idB); err != nil {
		t.Fatal(err)
	}
	if code, reason, err := ca.ExpectClose(ctx); err != nil || code != 4100 || reason != "banned" {
		t.Fatalf("a after DisconnectUser: %d %q %v, want 4100 banned", code, reason, err)
	}
	// On the user's channel, after the ban: b has had it, and is open.
	if err := e.ToUser(ctx, "alice", "after-ban", 1); err != nil {
		t.Fatal(err)
	}
	expect(t, cb, "b", "after-ban", `1`)
	if err := e.DisconnectUser(ctx, "alice", 4100, "banned"); err != nil {
		t.Fatal(err)
	}
	if code, reason, err := cb.ExpectClose(ctx); err != nil || code != 4100 || reason != "banned" {
		t.Fatalf("b after a DisconnectUser that did not spare it: %d %q %v, want 4100 banned", code, reason, err)
	}
	if err := e.ToUser(ctx, "carol", "still-here", 1); err != nil {
		t.Fatal(err)
	}
	expect(t, cc, "c", "still-here", `1`)
	if err := e.DisconnectUser(ctx, "alice", 1005, "x"); !errors.Is(err, protocol.ErrInvalidCloseCode) {
		t.Fatalf("DisconnectUser with close code 1005, which no endpoint may send: %v, want protocol.ErrInvalidCloseCode", err)
	}
}

func TestReachesBothInstances(t *testing.T) {
	srv := redistest.Start(t)
	for _, mode := range []redisbroker.Mode{redisbroker.ModeAudience, redisbroker.ModePattern} {
		t.Run(mode.String(), func(t *testing.T) {
			reachesBothInstances(t, func() redis.UniversalClient { return srv.Client() }, mode, false)
		})
	}
}

func TestReachesBothInstancesClusterSharded(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	reachesBothInstances(t, func() redis.UniversalClient { return cl.Client() }, redisbroker.ModeSharded, true)
}

func TestModule(t *testing.T) {
	srv := redistest.Start(t)
	var e *emitter.WebSocketEmitter
	app := fxt.New(t,
		emitter.Module,
		emitter.WithRedisConnection(srv.Client()),
		fx.Populate(&e),
	)
	app.RequireStart()
	if err := e.Broadcast(context.Background(), "ev", 1); err != nil {
		t.Fatal(err)
	}
	app.RequireStop()
}

func TestModuleRequiresRedis(t *testing.T) {
	err := fx.New(fx.NopLogger, emitter.Module, fx.Invoke(func(*emitter.WebSocketEmitter) {})).Err()
	if err == nil || !strings.Contains(err.Error(), "@app/websocket/redis-connection") {
		t.Fatalf("error does not name the binding: %v", err)
	}
}

// The client as redis.NewClient returns it is taken under the shared name,
// as the server module takes it, so an app running both binds it once; a
// client bound twice in two types is an error.
func TestModuleTakesTheClientsOwnType(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	var e *emitter.WebSocketEmitter
	app := fxt.New(t,
		emitter.Module,
		fx.Provide(fx.Annotate(func() *redis.Client { return rdb }, fx.ResultTags(emitter.RedisConnectionKey))),
		fx.Populate(&e),
	)
	app.RequireStart()
	if err := e.Broadcast(context.Background(), "ev", 1); err != nil {
		t.Fatal(err)
	}
	app.RequireStop()

	err := fx.New(fx.NopLogger, emitter.Module,
		fx.Provide(fx.Annotate(func() *redis.Client { return rdb }, fx.ResultTags(emitter.RedisConnectionKey))),
		emitter.WithRedisConnection(rdb),
		fx.Invoke(func(*emitter.WebSocketEmitter) {})).Err()
	if err == nil || !strings.Contains(err.Error(), "bound more than once") {
		t.Fatalf("a client bound twice: %v", err)
	}
}

// startWithoutRedis starts the emitter module against a Redis that is gone,
// within startTimeout, and returns the start's error.
func startWithoutRedis(t *testing.T, startTimeout time.Duration, extra ...fx.Option) error {
	t.Helper()
	srv := redistest.Start(t)
	srv.Kill()
	app := fx.New(append([]fx.Option{
		emitter.Module,
		emitter.WithRedisConnection(srv.Client(func(o *redis.Options) { o.MaxRetries = -1 })),
		fx.Invoke(func(*emitter.WebSocketEmitter) {}),
		fx.NopLogger,
	}, extra...)...)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	err := app.Start(ctx)
	if err == nil {
		_ = app.Stop(context.Background())
		t.Fatal("started without Redis")
	}
	return err
}

func TestModuleStartFailsWithoutRedis(t *testing.T) {
	err := startWithoutRedis(t, 5*time.Second, emitter.WithOptions(emitter.Options{ReadyTimeout: 200 * time.Millisecond}))
	if !strings.Contains(err.Error(), "redis did not answer PING within 200ms") {
		t.Fatalf("unclear error: %v", err)
	}
}

// With the default ReadyTimeout (longer than the app's start timeout), the
// emitter gives up first, so the app's error says what failed. (It gives
// up a tenth of the start timeout early: 300 ms here, room for a loaded
// machine.)
func TestModuleStartErrorBeatsTheStartTimeout(t *testing.T) {
	err := startWithoutRedis(t, 3*time.Second)
	if !strings.Contains(err.Error(), "redis did not answer PING") || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("the error does not say why: %v", err)
	}
}

// A nil client, even one typed inside the interface, is refused up front
// instead of panicking at the first publish.
func TestNewRefusesANilClient(t *testing.T) {
	for _, c := range []redis.UniversalClient{nil, (*redis.Client)(nil), (*redis.ClusterClient)(nil)} {
		if _, err := emitter.New(c, emitter.Options{}); !errors.Is(err, emitter.ErrNoRedis) {
			t.Errorf("New(%T(nil)) = %v, want ErrNoRedis", c, err)
		}
	}
}

func TestReachesBothInstancesClusterClassic(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	reachesBothInstances(t, func() redis.UniversalClient { return cl.Client() }, redisbroker.ModeAudience, false)
}

// On a cluster in classic mode, an emitter's messages to one room arrive
// in the order sent: each channel goes through the node owning its slot.
func TestClusterClassicKeepsOrder(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	ctx := context.Background()
	a := redisinstance.Start(t, cl.Client(), redisbroker.Options{})
	c, id := a.Connect(t, "u1")
	a.Join(t, id, "room")
	e, err := emitter.New(cl.Client(), emitter.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	for i := 0; i < n; i++ {
		if err := e.ToRoom(ctx, "room", "seq", i); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		expect(t, c, "client", "seq", strconv.Itoa(i))
	}
}

// One emitter's sends to a user, a client and a room reach a client of all
// three in the order they were made, as with the original: a notice, then
// the command it announces (from a user trial, which saw 422 of 3000
// reversed when the broker's workers took channels in parallel).
func TestEmitterOrderAcrossChannels(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a := redisinstance.Start(t, srv.Client(), redisbroker.Options{})
	c, id := a.Connect(t, "u1")
	a.Join(t, id, "room")
	e, err := emitter.New(srv.Client(), emitter.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 600
	for i := 0; i < n; i++ {
		switch i % 3 {
		case 0:
			err = e.ToUser(ctx, "u1", "seq", i)
		case 1:
			err = e.ToClient(ctx, id, "seq", i)
		default:
			err = e.ToRoom(ctx, "room", "seq", i)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		expect(t, c, "client", "seq", strconv.Itoa(i))
	}
}

func TestRingIsRefused(t *testing.T) {
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1", "b": "127.0.0.1:2"}})
	defer ring.Close()
	if _, err := emitter.New(ring, emitter.Options{}); !errors.Is(err, emitter.ErrRing) {
		t.Fatalf("New on a Ring = %v, want ErrRing", err)
	}
}

// The emitter waits for a Redis that comes up while it starts (from a spec
// audit: only the failure was tested), and publishes once it has.
func TestModuleWaitsForRedisComingUp(t *testing.T) {
	srv := redistest.Start(t)
	srv.Kill()
	var e *emitter.WebSocketEmitter
	app := fx.New(fx.NopLogger, emitter.Module,
		emitter.WithRedisConnection(srv.Client(func(o *redis.Options) { o.MaxRetries = -1 })),
		fx.Populate(&e),
	)
	go func() {
		time.Sleep(700 * time.Millisecond)
		srv.Restart()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatalf("start while Redis came up: %v", err)
	}
	if err := e.Broadcast(ctx, "ev", 1); err != nil {
		t.Fatal(err)
	}
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// newEmitter is an emitter on rc whose sends give up after timeout.
func newEmitter(t *testing.T, rc redis.UniversalClient, timeout time.Duration) *emitter.WebSocketEmitter {
	t.Helper()
	e, err := emitter.New(rc, emitter.Options{PublishTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// silentRedis is a client of a server that accepts and never answers.
func silentRedis(t *testing.T) redis.UniversalClient {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: blackhole.New(t).Addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = rc.Close() })
	return rc
}

// Stats count what Redis took, what reached no subscriber (a user with no
// connection anywhere), and what failed; refused input counts nowhere.
func TestStats(t *testing.T) {
	srv := redistest.Start(t)
	rc := srv.Client()
	defer rc.Close()
	e := newEmitter(t, rc, 500*time.Millisecond)
	ctx := context.Background()
	sub := srv.Client()
	defer sub.Close()
	ps := sub.Subscribe(ctx, protocol.TypeUser.Channel("online"))
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil { // the subscription's confirmation
		t.Fatal(err)
	}
	if err := e.ToUser(ctx, "online", "note", 1); err != nil {
		t.Fatal(err)
	}
	if err := e.ToUser(ctx, "offline", "note", 1); err != nil {
		t.Fatal(err)
	}
	if err := e.Broadcast(ctx, "", 1); err == nil {
		t.Fatal("an empty event was published")
	}
	if s := e.Stats(); s != (emitter.Stats{Published: 2, NoReceivers: 1}) {
		t.Fatalf("Stats = %+v, want 2 published, 1 with no receiver", s)
	}
	srv.Kill()
	if err := e.ToUser(ctx, "online", "note", 1); err == nil {
		t.Fatal("a publish succeeded with Redis gone")
	}
	if s := e.Stats(); s != (emitter.Stats{Published: 2, NoReceivers: 1, PublishErrors: 1, Unreachable: true}) {
		t.Fatalf("Stats = %+v, want the failed publish counted", s)
	}
}

// A broadcast no server heard is said in the log: every server listens on
// the broadcast channel, so none is running, or the emitter and the
// servers disagree on the sharded mode (a cluster trial lost every message
// to that, with nothing but NoReceivers to show it).
func TestBroadcastNoServerHeardIsLogged(t *testing.T) {
	srv := redistest.Start(t)
	rc := srv.Client()
	defer rc.Close()
	core, logs := observer.New(zap.WarnLevel)
	e, err := emitter.New(rc, emitter.Options{Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Servers in sharded mode: SSUBSCRIBE, which a classic PUBLISH misses.
	sub := srv.Client()
	defer sub.Close()
	ps := sub.SSubscribe(ctx, protocol.ChannelBroadcast)
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := e.Broadcast(ctx, "news", 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.ToUser(ctx, "offline", "note", 1); err != nil {
		t.Fatal(err)
	}
	got := logs.FilterMessageSnippet("a broadcast reached no server").All()
	if len(got) != 1 {
		t.Fatalf("%d warnings of broadcasts no server heard, want 1 (a line a second): %v", len(got), logs.All())
	}
	if e.Stats().NoReceivers != 4 {
		t.Fatalf("NoReceivers = %d, want 4", e.Stats().NoReceivers)
	}
}

// While Redis is unreachable, sends fail at once with ErrUnreachable
// instead of each waiting out PublishTimeout (a loop sending one message
// after another kept a send every PublishTimeout), one in a while still
// goes through, and the first Redis takes ends it.
func TestFailsAtOnceWhileRedisIsUnreachable(t *testing.T) {
	ctx := context.Background()
	burst := func(t *testing.T, e *emitter.WebSocketEmitter) {
		t.Helper()
		n := 0
		for range 5 {
			if err := e.ToRoom(ctx, "r", "ev", 1); errors.Is(err, emitter.ErrUnreachable) {
				n++
			}
		}
		if n < 4 {
			t.Fatalf("%d of 5 sends in a row failed with ErrUnreachable, want 4 at least", n)
		}
		if !e.Stats().Unreachable {
			t.Fatal("Stats().Unreachable false while sends fail at once")
		}
	}
	t.Run("refused, then back", func(t *testing.T) {
		srv := redistest.Start(t)
		rc := srv.Client()
		defer rc.Close()
		e := newEmitter(t, rc, 500*time.Millisecond)
		if err := e.ToRoom(ctx, "r", "ev", 1); err != nil {
			t.Fatal(err)
		}
		srv.Kill()
		if err := e.ToRoom(ctx, "r", "ev", 1); err == nil || errors.Is(err, emitter.ErrUnreachable) {
			t.Fatalf("first send with Redis gone: %v, want the connection's own error", err)
		}
		burst(t, e)
		srv.Restart()
		deadline := time.Now().Add(10 * time.Second)
		for e.ToRoom(ctx, "r", "ev", 1) != nil {
			if time.Now().After(deadline) {
				t.Fatal("sends still failing 10 s after Redis came back")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if e.Stats().Unreachable {
			t.Fatal("still unreachable after a send went through")
		}
	})
	t.Run("silent", func(t *testing.T) {
		e := newEmitter(t, silentRedis(t), 200*time.Millisecond)
		if err := e.ToRoom(ctx, "r", "ev", 1); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("send to a silent Redis: %v, want its deadline", err)
		}
		burst(t, e)
	})
	t.Run("the caller's own deadline is not Redis's fault", func(t *testing.T) {
		e := newEmitter(t, silentRedis(t), 5*time.Second)
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		if err := e.ToRoom(short, "r", "ev", 1); err == nil {
			t.Fatal("send to a silent Redis succeeded")
		}
		if e.Stats().Unreachable {
			t.Fatal("a send cut short by its caller's deadline took Redis for unreachable")
		}
	})
}

// Stats().Unreachable turns false a second after the last failed send
// when nothing is sent: only a send cleared it, so an emitter whose
// readiness gated the traffic that would make it send stayed unready
// for good once Redis was back (found in review).
func TestUnreachableTurnsFalseWithoutSends(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	rc := srv.Client()
	defer rc.Close()
	e := newEmitter(t, rc, 500*time.Millisecond)
	srv.Kill()
	if err := e.ToRoom(ctx, "r", "ev", 1); err == nil {
		t.Fatal("send with Redis gone succeeded")
	}
	if !e.Stats().Unreachable {
		t.Fatal("setup: not marked unreachable")
	}
	srv.Restart()
	if err := rc.Ping(ctx).Err(); err != nil {
		t.Fatalf("setup: Redis not back: %v", err)
	}
	time.Sleep(2 * time.Second) // eight probe periods, no sends
	if e.Stats().Unreachable {
		t.Fatal("Stats().Unreachable still true 2 s after Redis answered again (no send was made to clear it)")
	}
}

// audiencePair starts a Redis and two instances on it in audience mode,
// where an instance hears a room, a user or a client only while it holds
// one.
func audiencePair(t *testing.T) (*redistest.Server, *redisinstance.Instance, *redisinstance.Instance) {
	srv := redistest.Start(t)
	a := redisinstance.Start(t, srv.Client(), redisbroker.Options{Mode: redisbroker.ModeAudience})
	b := redisinstance.Start(t, srv.Client(), redisbroker.Options{Mode: redisbroker.ModeAudience})
	return srv, a, b
}

// A worker adds a user to a room and takes them out again, on every
// instance (a chat's invite and kick): on Redis in audience mode, where an
// instance hears a room only once it has a member there.
func TestAddAndRemoveUserFromAWorker(t *testing.T) {
	srv, a, b := audiencePair(t)
	ctx := context.Background()
	ca, _ := a.Connect(t, "alice")
	cb, _ := b.Connect(t, "alice")
	cc, idC := b.Connect(t, "carol")
	b.Join(t, idC, "general")
	e, err := emitter.New(srv.Client(), emitter.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.AddUserToRooms(ctx, "alice", "general"); err != nil {
		t.Fatal(err)
	}
	// The room's state, to the user after the join: every instance has
	// applied the join when its connections get it.
	if err := e.ToUser(ctx, "alice", "history", []int{1, 2}); err != nil {
		t.Fatal(err)
	}
	expect(t, ca, "a", "history", `[1,2]`)
	expect(t, cb, "b", "history", `[1,2]`)
	for _, in := range []*redisinstance.Instance{a, b} {
		if err := in.Helper.SyncSubscriptions(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.ToRoom(ctx, "general", "said", "hi"); err != nil {
		t.Fatal(err)
	}
	for who, c := range map[string]*fxtest.Client{"a": ca, "b": cb, "c": cc} {
		expect(t, c, who, "said", `"hi"`)
	}
	if err := e.RemoveUserFromRooms(ctx, "alice", "general"); err != nil {
		t.Fatal(err)
	}
	if err := e.ToUser(ctx, "alice", "kicked", 1); err != nil {
		t.Fatal(err)
	}
	expect(t, ca, "a", "kicked", `1`)
	expect(t, cb, "b", "kicked", `1`)
	if err := e.ToRoom(ctx, "general", "said", "bye"); err != nil {
		t.Fatal(err)
	}
	expect(t, cc, "c", "said", `"bye"`)
	if err := e.ToRoom(ctx, "general", "marker", 0); err != nil {
		t.Fatal(err)
	}
	expect(t, cc, "c", "marker", `0`)
	for who, c := range map[string]*fxtest.Client{"a": ca, "b": cb} {
		for _, m := range c.Messages() {
			if m.Event == "said" && string(m.Data) == `"bye"` {
				t.Fatalf("%s got the room's message after the user was taken out", who)
			}
		}
	}
	for name, err := range map[string]error{
		"empty user":    e.AddUserToRooms(ctx, "", "r"),
		"no rooms":      e.RemoveUserFromRooms(ctx, "alice"),
		"internal room": e.AddUserToRooms(ctx, "alice", "ws:broadcast"),
	} {
		if err == nil || !strings.Contains(err.Error(), "UserToRooms") && !strings.Contains(err.Error(), "UserFromRooms") {
			t.Errorf("%s: %v, want an error naming the method", name, err)
		}
	}
}

// Publish says how many instances took a send (an IoT trial's ask: is the
// device connected anywhere?): in audience mode, those holding the target.
func TestPublishCountsTheInstancesThatTookIt(t *testing.T) {
	srv, a, b := audiencePair(t)
	ctx := context.Background()
	ca, idA := a.Connect(t, "device-7")
	cb, _ := b.Connect(t, "device-7")
	_, idC := b.Connect(t, "device-9")
	b.Join(t, idC, "floor-2")
	for _, in := range []*redisinstance.Instance{a, b} {
		if err := in.Helper.SyncSubscriptions(ctx); err != nil {
			t.Fatal(err)
		}
	}
	e, err := emitter.New(srv.Client(), emitter.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range audienceCases(idA) {
		n, err := e.Publish(ctx, c.typ, c.target, "cmd", 1)
		if err != nil || n != c.want {
			t.Errorf("Publish to %s %q: %d %v, want %d", c.typ, c.target, n, err, c.want)
		}
	}
	expect(t, ca, "a", "cmd", `1`)
	expect(t, cb, "b", "cmd", `1`)
	if st := e.Stats(); st.NoReceivers != 3 || st.Published != 8 {
		t.Errorf("Stats after the sends: %+v, want 8 published, 3 with no receivers", st)
	}
	for name, call := range map[string]func() (int, error){
		"unknown type":     func() (int, error) { return e.Publish(ctx, protocol.TypeDisconnectUser, "u", "x", 1) },
		"empty target":     func() (int, error) { return e.Publish(ctx, protocol.TypeUser, "", "x", 1) },
		"empty event":      func() (int, error) { return e.Publish(ctx, protocol.TypeRoom, "r", "", 1) },
		"unencodable data": func() (int, error) { return e.Publish(ctx, protocol.TypeRoom, "r", "x", func() {}) },
	} {
		if _, err := call(); err == nil {
			t.Errorf("%s: no error", name)
		} else if name != "unencodable data" && !strings.Contains(err.Error(), "emitter: Publish:") {
			t.Errorf("%s: %v, want an error naming Publish", name, err)
		}
	}
}

// A worker closes one device's connection, wherever it is, and no other
// of the user's.
func TestDisconnectClientFromAWorker(t *testing.T) {
	srv, a, b := audiencePair(t)
	ctx := context.Background()
	phone, idPhone := b.Connect(t, "alice")
	laptop, _ := a.Connect(t, "alice")
	e, err := emitter.New(srv.Client(), emitter.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.DisconnectClient(ctx, idPhone, 4000, "Signed in on this device again"); err != nil {
		t.Fatal(err)
	}
	if code, reason, err := phone.ExpectClose(ctx); err != nil || code != 4000 || reason != "Signed in on this device again" {
		t.Fatalf("the phone: %d %q %v", code, reason, err)
	}
	if err := e.ToUser(ctx, "alice", "still-here", 1); err != nil {
		t.Fatal(err)
	}
	expect(t, laptop, "laptop", "still-here", `1`)
	if err := e.DisconnectClient(ctx, idPhone, 1005, ""); !errors.Is(err, protocol.ErrInvalidCloseCode) {
		t.Fatalf("close code 1005: %v", err)
	}
}

// A Redis in protected mode answers every connection with DENIED and
// closes it, which go-redis reports as a broken pipe: Start fails at once,
// saying so (found in a chaos trial: it waited out its 30 s).
func TestStartFailsAtOnceOnProtectedMode(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("-DENIED Redis is running in protected mode because protected mode is enabled\r\n"))
			c.Close()
		}
	}()
	rdb := redis.NewClient(&redis.Options{Addr: ln.Addr().String()})
	defer rdb.Close()
	e, err := emitter.New(rdb, emitter.Options{})
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	err = e.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "DENIED") || time.Since(began) > 5*time.Second {
		t.Fatalf("Start against a Redis in protected mode: %v after %v, want DENIED at once", err, time.Since(began))
	}
}

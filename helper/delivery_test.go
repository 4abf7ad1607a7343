package helper_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/protocol"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// pair serves two helpers on one in-process hub: two instances.
func pair(t *testing.T, tr transport) (a, b *kit) {
	hub := broker.NewMemoryHub()
	a = newKit(t, tr, func(c *helper.Config) { c.Broker = hub.NewBroker() })
	b = newKit(t, tr, func(c *helper.Config) { c.Broker = hub.NewBroker() })
	return a, b
}

func dataOf(t *testing.T, c interface {
	Expect(context.Context, string) (protocol.Message, error)
}, event string) string {
	t.Helper()
	m, err := c.Expect(context.Background(), event)
	if err != nil {
		t.Fatalf("expected %q: %v", event, err)
	}
	return string(m.Data)
}

func TestSendToClient(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, nil)
		c, cd := k.login("u1")
		other, _ := k.login("u2")
		ok, err := k.h.SendToClient(cd.ID, "direct", map[string]any{"n": 1, "html": "<b>&"})
		if !ok || err != nil {
			t.Fatalf("SendToClient = %v %v", ok, err)
		}
		if got := dataOf(t, c, "direct"); got != `{"html":"<b>&","n":1}` {
			t.Fatalf("data %s", got)
		}
		expectNothing(t, other, "direct")
		if ok, _ := k.h.SendToClient("no-such-client", "direct", 1); ok {
			t.Fatal("unknown client reported as here")
		}
		if _, err := k.h.SendToClient(cd.ID, "bad", func() {}); err == nil {
			t.Fatal("unencodable data accepted")
		}
		if _, err := k.h.SendToClient(cd.ID, "bad", json.RawMessage(`{nope`)); !errors.Is(err, helper.ErrInvalidData) {
			t.Fatalf("invalid raw JSON: %v", err)
		}
		_, _ = k.h.SendToClient(cd.ID, "raw", json.RawMessage(`[1,2]`))
		if got := dataOf(t, c, "raw"); got != `[1,2]` {
			t.Fatalf("raw data %s", got)
		}
		_, _ = k.h.SendToClient(cd.ID, "nodata", nil)
		m := expectEvent(t, c, "nodata")
		if m.Data != nil {
			t.Fatalf("nil data sent as %s", m.Data)
		}

		// Deliberate difference: only error events reach unauthenticated clients.
		u := k.dial()
		id := k.unauthorizedID()
		if ok, _ := k.h.SendToClient(id, "direct", 1); ok {
			t.Error("SendToClient to an unauthenticated client reported a delivery")
		}
		_, _ = k.h.Broadcast("everyone", 1)
		_, _ = k.h.SendToRoom(id, "own-room", 1)
		expectNothing(t, u, "direct")
		expectNothing(t, u, "everyone")
		expectNothing(t, u, "own-room")
	})
}

func TestSendToUserAcrossInstances(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		a, b := pair(t, tr)
		a1, _ := a.login("alice")
		a2, _ := a.login("alice")
		b1, _ := b.login("alice")
		bob, _ := a.login("bob")
		if err := a.h.SendToUser(context.Background(), "alice", "for-alice", "hi"); err != nil {
			t.Fatal(err)
		}
		for _, c := range []interface {
			Expect(context.Context, string) (protocol.Message, error)
		}{a1, a2, b1} {
			if got := dataOf(t, c, "for-alice"); got != `"hi"` {
				t.Fatalf("data %s", got)
			}
		}
		expectNothing(t, bob, "for-alice")
		// Once, not twice via the broker: a marker sent to alice from the
		// other instance reaches a1 through the broker, after any copy of
		// for-alice coming back that way.
		if err := b.h.SendToUser(context.Background(), "alice", "marker", 1); err != nil {
			t.Fatal(err)
		}
		dataOf(t, a1, "marker")
		for _, m := range a1.Messages() {
			if m.Event == "for-alice" {
				t.Fatal("for-alice delivered twice")
			}
		}
	})
}

func TestSendToRoomAndBroadcastExclude(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, nil)
		x, xcd := k.login("x")
		y, _ := k.login("y")
		z, zcd := k.login("z")
		_ = x.Join("team")
		_ = y.Join("team")
		roundTrip(t, x)
		roundTrip(t, y)
		n, err := k.h.SendToRoom("team", "team-msg", 1, xcd.ID)
		if err != nil || n != 1 {
			t.Fatalf("SendToRoom = %d %v, want 1", n, err)
		}
		expectEvent(t, y, "team-msg")
		expectNothing(t, x, "team-msg")
		expectNothing(t, z, "team-msg")
		if n, _ := k.h.SendToRoom("empty-room", "e", 1); n != 0 {
			t.Fatalf("empty room reached %d", n)
		}
		if n, _ := k.h.SendToRoom("ws:internal:broadcast", "e", 1); n != 0 {
			t.Fatalf("internal room reached %d", n)
		}

		unauth := k.dial()
		n, err = k.h.Broadcast("all", 2, zcd.ID, "not-a-client")
		if err != nil || n != 2 {
			t.Fatalf("Broadcast = %d %v, want 2", n, err)
		}
		expectEvent(t, x, "all")
		expectEvent(t, y, "all")
		expectNothing(t, z, "all")
		expectNothing(t, unauth, "all")
		if s := k.h.Stats(); s.Delivered < 3 {
			t.Fatalf("Delivered = %d", s.Delivered)
		}
	})
}

// Public Send resolves its destination in the spec's order.
func TestSendResolution(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		a, b := pair(t, tr)
		ctx := context.Background()
		ac, acd := a.login("ua")
		bc, bcd := b.login("ub")
		_ = ac.Join("room-a")
		_ = bc.Join("room-b")
		_ = bc.Join("shared")
		_ = ac.Join("shared")
		roundTrip(t, ac)
		roundTrip(t, bc)
		// A client's join subscribes its instance to the room in the
		// background: wait for both, or a send from the other instance may
		// beat the subscription (and a check for no second copy would
		// prove nothing).
		for _, k := range []*kit{a, b} {
			if err := k.h.SyncSubscriptions(ctx); err != nil {
				t.Fatal(err)
			}
		}

		// No destination: everyone, on every instance.
		if err := a.h.Send(ctx, "", "t-all", 1); err != nil {
			t.Fatal(err)
		}
		expectEvent(t, ac, "t-all")
		expectEvent(t, bc, "t-all")

		// A local client: delivered here and published (ws:client:<id>).
		_ = a.h.Send(ctx, acd.ID, "t-local-client", 1)
		expectEvent(t, ac, "t-local-client")
		expectNothing(t, ac, "t-local-client")

		// A local room: delivered here and on the other instance's members.
		_ = a.h.Send(ctx, "shared", "t-shared", 1)
		expectEvent(t, ac, "t-shared")
		expectEvent(t, bc, "t-shared")
		expectNothing(t, ac, "t-shared")

		// Neither: published as a room, which reaches a remote client by its
		// own-id room, and a remote room.
		_ = a.h.Send(ctx, bcd.ID, "t-remote-client", 1)
		expectEvent(t, bc, "t-remote-client")
		_ = a.h.Send(ctx, "room-b", "t-remote-room", 1)
		expectEvent(t, bc, "t-remote-room")
		expectNothing(t, ac, "t-remote-room")

		// Empty topic or absent data: nothing.
		_ = a.h.Send(ctx, "", "", 1)
		_ = a.h.Send(ctx, "", "t-nil", nil)
		_ = a.h.Send(ctx, "", "t-nil-raw", json.RawMessage(nil))
		expectNothing(t, ac, "t-nil")
		expectNothing(t, bc, "t-nil-raw")
		if got := ac.Messages(); len(got) != 0 {
			t.Fatalf("unexpected messages %+v", got)
		}
	})
}

// Envelopes from other instances: own serverId ignored, bad ones counted.
func TestBrokerEnvelopes(t *testing.T) {
	hub := broker.NewMemoryHub()
	k := newKit(t, rawSocket, func(c *helper.Config) { c.Broker = hub.NewBroker() })
	c, cd := k.login("u1")
	emitter := hub.NewBroker()
	if err := emitter.Start(context.Background(), func(string, []byte) {}); err != nil {
		t.Fatal(err)
	}
	defer emitter.Close()
	pub := func(ch, payload string) {
		t.Helper()
		if err := emitter.Publish(context.Background(), ch, []byte(payload)); err != nil {
			t.Fatal(err)
		}
	}
	pub(protocol.ChannelBroadcast, `not json`)
	pub(protocol.ChannelBroadcast, `{"serverId":1,"type":"broadcast","event":"x"}`)
	pub(protocol.ChannelBroadcast, `{"serverId":"emitter","type":"broadcast"}`)
	pub(protocol.ChannelBroadcast, `{"serverId":"emitter","type":"bogus","event":"x"}`)
	pub(protocol.ChannelBroadcast, `{"serverId":"`+k.h.ServerID()+`","type":"broadcast","event":"mine"}`)
	// Ours too, in another key order (the fast prefix check misses it).
	pub(protocol.ChannelBroadcast, `{"type":"broadcast","serverId":"`+k.h.ServerID()+`","event":"mine"}`)
	pub(protocol.ChannelBroadcast, `{"serverId":"emitter","type":"broadcast","event":"excluded","exclude":["`+cd.ID+`"]}`)
	pub(protocol.ClientChannel(cd.ID), `{"serverId":"emitter","type":"client","target":"`+cd.ID+`","event":"to-client","data":{"a":1}}`)
	pub(protocol.UserChannel("u1"), `{"serverId":"emitter","type":"user","target":"u1","event":"to-user"}`)
	pub(protocol.RoomChannel(protocol.DefaultRoom), `{"serverId":"emitter","type":"room","target":"ws-default","event":"to-room","exclude":[5,null]}`)
	if got := dataOf(t, c, "to-client"); got != `{"a":1}` {
		t.Fatalf("data %s", got)
	}
	expectEvent(t, c, "to-user")
	expectEvent(t, c, "to-room")
	// The broker keeps a channel's order: once "last" is in, whatever came
	// before it on the broadcast channel has been handled.
	pub(protocol.ChannelBroadcast, `{"serverId":"emitter","type":"broadcast","event":"last"}`)
	expectEvent(t, c, "last")
	for _, m := range c.Messages() {
		if m.Event == "mine" || m.Event == "excluded" {
			t.Fatalf("delivered %q", m.Event)
		}
	}
	if s := k.h.Stats(); s.BadEnvelopes != 4 {
		t.Fatalf("BadEnvelopes = %d, want 4", s.BadEnvelopes)
	}
}

// Junk on a channel is logged, but at most once a second, and the line
// after a quiet second says how many were held back: a stream of bad
// envelopes must not flood the log.
func TestBadEnvelopesAreLoggedOnceASecond(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	hub := broker.NewMemoryHub()
	k := newKit(t, rawSocket, func(c *helper.Config) { c.Broker = hub.NewBroker(); c.Logger = zap.New(core) })
	c, _ := k.login("u1")
	emitter := hub.NewBroker()
	if err := emitter.Start(context.Background(), func(string, []byte) {}); err != nil {
		t.Fatal(err)
	}
	defer emitter.Close()
	pub := func(payload string) {
		t.Helper()
		if err := emitter.Publish(context.Background(), protocol.ChannelBroadcast, []byte(payload)); err != nil {
			t.Fatal(err)
		}
	}
	const junk = 50
	for i := range junk {
		if i%2 == 0 {
			pub(`{"serverId":`)
		} else {
			pub(`{"serverId":"emitter","type":"bogus","event":"x"}`)
		}
	}
	pub(`{"serverId":"emitter","type":"broadcast","event":"last"}`)
	expectEvent(t, c, "last")
	lines := logs.FilterMessageSnippet("envelope").All()
	if len(lines) == 0 || len(lines) > 2 {
		// More than one second boundary in a burst of 50 would be a
		// stalled machine, not a throttle.
		t.Fatalf("%d warnings for %d bad envelopes, want 1 (2 across a second boundary)", len(lines), junk)
	}
	first := lines[0]
	if first.Message != "dropping unreadable envelope" || first.ContextMap()["channel"] != protocol.ChannelBroadcast || first.ContextMap()["error"] == nil {
		t.Fatalf("first warning %q %v, want the unreadable envelope with its channel and error", first.Message, first.ContextMap())
	}
	time.Sleep(1100 * time.Millisecond)
	pub(`{"serverId":"emitter","type":"bogus","event":"x"}`)
	pub(`{"serverId":"emitter","type":"broadcast","event":"last"}`)
	expectEvent(t, c, "last")
	lines = logs.FilterMessageSnippet("envelope").All()
	last := lines[len(lines)-1]
	if last.Message != "dropping envelope of unknown type" || last.ContextMap()["type"] != "bogus" {
		t.Fatalf("warning after a quiet second %q %v, want the unknown type", last.Message, last.ContextMap())
	}
	var told uint64
	for _, l := range lines {
		told++
		if n, ok := l.ContextMap()["suppressed"].(uint64); ok {
			told += n
		}
	}
	if told != junk+1 {
		t.Fatalf("the warnings account for %d bad envelopes, want %d", told, junk+1)
	}
	if s := k.h.Stats(); s.BadEnvelopes != junk+1 {
		t.Fatalf("BadEnvelopes = %d, want %d", s.BadEnvelopes, junk+1)
	}
}

// Server-side JoinRoom/LeaveRoom skip validation but keep the invariants.
func TestServerSideJoinLeave(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, nil)
		c, cd := k.login("u1")
		long := strings.Repeat("r", 300)
		for _, r := range []string{"deny-vip", long} {
			if !k.h.JoinRoom(cd.ID, r) {
				t.Fatalf("JoinRoom %q refused", r)
			}
		}
		if k.h.JoinRoom(cd.ID, "ws:internal:broadcast") || k.h.JoinRoom(cd.ID, "") {
			t.Fatal("internal or empty room joined")
		}
		if k.h.JoinRoom("nobody", "x") || k.h.LeaveRoom("nobody", "x") {
			t.Fatal("unknown client joined or left")
		}
		if !k.h.InRoom(cd.ID, "deny-vip") || !k.h.InRoom(cd.ID, cd.ID) || !k.h.InRoom(cd.ID, protocol.DefaultRoom) ||
			k.h.InRoom(cd.ID, "elsewhere") || k.h.InRoom("nobody", "deny-vip") {
			t.Fatal("InRoom disagrees with the joins")
		}
		_, _ = k.h.SendToRoom("deny-vip", "vip", 1)
		expectEvent(t, c, "vip")
		// The server may take a client out of its own-id room (the
		// original allows it; only the client's own leave is refused).
		if !k.h.LeaveRoom(cd.ID, cd.ID) || k.h.InRoom(cd.ID, cd.ID) || !k.h.JoinRoom(cd.ID, cd.ID) {
			t.Fatal("server-side leave and rejoin of the own-id room refused")
		}
		if !k.h.LeaveRoom(cd.ID, "deny-vip") || k.h.LeaveRoom(cd.ID, "deny-vip") || k.h.InRoom(cd.ID, "deny-vip") {
			t.Fatal("LeaveRoom result wrong")
		}
		if len(k.h.GetClientsByRoom("deny-vip")) != 0 {
			t.Fatal("room not emptied")
		}
	})
}

// Introspection returns copies.
func TestIntrospectionReturnsCopies(t *testing.T) {
	k := newKit(t, rawSocket, nil)
	_, cd := k.login("u1")
	_, _ = k.login("u1")
	_, _ = k.login("u2")
	if n := len(k.h.GetClients()); n != 3 {
		t.Fatalf("%d clients", n)
	}
	if n := len(k.h.GetClientsByUser("u1")); n != 2 {
		t.Fatalf("%d clients of u1", n)
	}
	if n := len(k.h.GetClientsByRoom(protocol.DefaultRoom)); n != 3 {
		t.Fatalf("%d clients in default room", n)
	}
	if n := len(k.h.GetClientsByUser("nobody")) + len(k.h.GetClientsByRoom("nowhere")); n != 0 {
		t.Fatal("phantom clients")
	}
	v, ok := k.h.GetClient(cd.ID)
	if !ok {
		t.Fatal("client not found")
	}
	v.Rooms[0] = "mutated"
	v.Metadata["role"] = "admin"
	for _, views := range [][]helper.ClientView{k.h.GetClientsByUser("u1"), k.h.GetClients()} {
		for _, w := range views {
			if w.ID == cd.ID && (slices.Contains(w.Rooms, "mutated") || w.Metadata["role"] != "user") {
				t.Fatalf("introspection shares state: %+v", w)
			}
		}
	}
	if _, ok := k.h.GetClient("nobody"); ok {
		t.Fatal("unknown client found")
	}
	s := k.h.Stats()
	if s.Clients != 3 || s.Authenticated != 3 || s.Users != 2 || s.ConnectionsTotal != 3 {
		t.Fatalf("stats %+v", s)
	}
}

// Encode and frame once per message: the allocations of a broadcast do not
// grow with its recipients (the recipients here never read, so the client
// side allocates nothing). Measured over many broadcasts: queues that
// coalesce several frames take pooled arrays, which the first runs fill.
func TestBroadcastAllocationsIndependentOfRecipients(t *testing.T) {
	k := newKit(t, rawSocket, nil)
	allocs := func() float64 {
		return testing.AllocsPerRun(200, func() {
			_, _ = k.h.Broadcast("news", map[string]int{"n": 1})
		})
	}
	k.rawClient("r0", 0)
	one := allocs()
	for i := 1; i < 40; i++ {
		k.rawClient("r"+strconv.Itoa(i), 0)
	}
	eventually(t, "40 recipients", func() bool { return k.h.Stats().Authenticated == 40 })
	forty := allocs()
	t.Logf("allocations per broadcast: %.1f to 1 client, %.1f to 40", one, forty)
	if forty > one+2 {
		t.Fatalf("allocations grow with recipients: %.1f to 1, %.1f to 40", one, forty)
	}
}

// The auth timer is cleared at connected: an authenticated client outlives
// every auth deadline.
func TestAuthTimerClearedOnConnected(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		const at = 50 * time.Millisecond
		k := newKit(t, tr, func(c *helper.Config) { c.Options.AuthTimeout = at })
		c, _ := k.login("u1")
		time.Sleep(protocol.AuthInProgressFactor*at + 2*at)
		roundTrip(t, c)
	})
}

// A fan-out that was under way when its recipient's socket closed must not
// write to the descriptor number afterwards: the kernel hands it to the next
// accepted connection, which would get another client's frames. Clients
// come and go under a steady broadcast; the newcomers never authenticate, so
// any frame they get, or a handshake it garbles, is one that went astray.
func TestClosedSocketsGetNoStrayFrames(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		// The newcomers wait for the end unauthenticated.
		k := newKit(t, tr, func(cfg *helper.Config) { cfg.Options.AuthTimeout = time.Minute })
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			payload := strings.Repeat("x", 2000)
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, _ = k.h.Broadcast("stray", payload)
			}
		}()
		defer func() { close(stop); <-done }()
		ctx := context.Background()
		deadline := time.Now().Add(time.Second)
		var newcomers []*fxtest.Client
		for round := 0; time.Now().Before(deadline); round++ {
			var old []*fxtest.Client
			for i := 0; i < 8; i++ {
				c, _ := k.login(fmt.Sprintf("u%d-%d", round, i))
				old = append(old, c)
			}
			for _, c := range old {
				_ = c.Abort()
			}
			for i := 0; i < 8; i++ {
				c, err := fxtest.Dial(ctx, k.url)
				if err != nil {
					t.Fatalf("round %d: a newcomer's handshake failed (a stray frame in its response?): %v", round, err)
				}
				newcomers = append(newcomers, c)
			}
		}
		time.Sleep(50 * time.Millisecond)
		for _, c := range newcomers {
			if m := c.Messages(); len(m) > 0 {
				t.Fatalf("a client that never authenticated got %d messages, the first %q", len(m), m[0].Event)
			}
			if c.Closed() {
				code, reason, _ := c.ExpectClose(ctx)
				t.Fatalf("a client that never authenticated was closed (garbled frames?): %d %q", code, reason)
			}
			_ = c.Abort()
		}
	})
}

// A client cannot join another client's id room by itself: sends to a client
// on another instance travel through that room, so it would get them too.
// AllowClientIDRooms hands such names to the validate-room handler again.
func TestJoinOfAnotherClientsIDRoomIsRefused(t *testing.T) {
	a, b := pair(t, rawSocket)
	victim, vcd := a.login("victim")
	spy, scd := b.login("spy")
	_ = spy.Join(vcd.ID, "lobby", scd.ID)
	roundTrip(t, spy)
	b.rec.mu.Lock()
	asked := b.rec.joins[len(b.rec.joins)-1].Rooms
	b.rec.mu.Unlock()
	if !slices.Equal(asked, []string{"lobby", scd.ID}) {
		t.Fatalf("validate-room asked for %v, want lobby and the client's own id only", asked)
	}
	if err := b.h.SyncSubscriptions(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := b.h.Send(context.Background(), vcd.ID, "private", map[string]string{"otp": "123456"}); err != nil {
		t.Fatal(err)
	}
	dataOf(t, victim, "private")
	expectNothing(t, spy, "private")

	c := newKit(t, rawSocket, func(c *helper.Config) { c.Options.AllowClientIDRooms = true })
	u, _ := c.login("u")
	_ = u.Join(vcd.ID)
	roundTrip(t, u)
	if v := c.h.GetClientsByRoom(vcd.ID); len(v) != 1 {
		t.Fatalf("with AllowClientIDRooms the join was refused: %v", v)
	}
}

// recordingBroker keeps what the helper publishes.
type recordingBroker struct {
	*broker.Memory
	mu        sync.Mutex
	published []publishedEnvelope
}

type publishedEnvelope struct {
	Channel  string
	Type     string `json:"type"`
	Target   string `json:"target"`
	Event    string `json:"event"`
	ServerID string `json:"serverId"`
}

func (r *recordingBroker) Publish(ctx context.Context, channel string, payload []byte) error {
	var e publishedEnvelope
	_ = json.Unmarshal(payload, &e)
	e.Channel = channel
	r.mu.Lock()
	r.published = append(r.published, e)
	r.mu.Unlock()
	return r.Memory.Publish(ctx, channel, payload)
}

func (r *recordingBroker) take() []publishedEnvelope {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.published
	r.published = nil
	return out
}

// Send publishes what the spec says beside its local delivery: a broadcast
// envelope with no destination, a client envelope for a local client, a
// room envelope for a local room, and a room envelope targeting anything
// else; nothing for an empty topic or absent data. (From a spec audit:
// TestSendResolution sees the deliveries, not the envelopes.)
func TestSendPublishesAsTheSpecSays(t *testing.T) {
	rb := &recordingBroker{Memory: broker.NewMemory()}
	k := newKit(t, rawSocket, func(c *helper.Config) { c.Broker = rb })
	c, cd := k.login("u")
	_ = c.Join("here")
	roundTrip(t, c)
	ctx := context.Background()
	rb.take()
	sends := []struct {
		dest, event string
		data        any
		want        []publishedEnvelope
	}{
		{"", "t-all", 1, []publishedEnvelope{{Channel: protocol.ChannelBroadcast, Type: "broadcast", Event: "t-all"}}},
		{cd.ID, "t-client", 1, []publishedEnvelope{{Channel: protocol.ChannelClientPrefix + cd.ID, Type: "client", Target: cd.ID, Event: "t-client"}}},
		{"here", "t-room", 1, []publishedEnvelope{{Channel: protocol.ChannelRoomPrefix + "here", Type: "room", Target: "here", Event: "t-room"}}},
		{"elsewhere", "t-other", 1, []publishedEnvelope{{Channel: protocol.ChannelRoomPrefix + "elsewhere", Type: "room", Target: "elsewhere", Event: "t-other"}}},
		{"", "", 1, nil},
		{"here", "t-nil", nil, nil},
	}
	for _, s := range sends {
		if err := k.h.Send(ctx, s.dest, s.event, s.data); err != nil {
			t.Fatalf("Send(%q, %q): %v", s.dest, s.event, err)
		}
		got := rb.take()
		for i := range got {
			if got[i].ServerID == "" {
				t.Errorf("Send(%q, %q): envelope without a serverId", s.dest, s.event)
			}
			got[i].ServerID = ""
		}
		if !slices.Equal(got, s.want) {
			t.Errorf("Send(%q, %q, %v) published %+v, want %+v", s.dest, s.event, s.data, got, s.want)
		}
	}
	for _, ev := range []string{"t-all", "t-client", "t-room"} {
		expectEvent(t, c, ev)
	}
}

// The authenticator's rooms are joined before `connected`: a send to one
// from another instance right after `connected` reaches the client, with
// no join and no wait (from a user trial: a player could never be in its
// match when it heard `connected`). Internal names are skipped.
func TestAuthResultRoomsJoinedBeforeConnected(t *testing.T) {
	hub := broker.NewMemoryHub()
	auth := func(c *helper.Config) {
		c.Broker = hub.NewBroker()
		next := c.Handlers.Authenticate
		c.Handlers.Authenticate = func(ctx context.Context, req helper.AuthenticateRequest) (*helper.AuthResult, error) {
			res, err := next(ctx, req)
			if res != nil {
				res.Rooms = []string{"match-7", "ws:room:evil", ""}
			}
			return res, err
		}
	}
	a := newKit(t, rawSocket, auth)
	b := newKit(t, rawSocket, func(c *helper.Config) { c.Broker = hub.NewBroker() })
	c, cd := a.login("player")
	view, _ := a.h.GetClient(cd.ID)
	if !slices.Contains(view.Rooms, "match-7") || slices.Contains(view.Rooms, "ws:room:evil") {
		t.Fatalf("rooms on connected: %v", view.Rooms)
	}
	if err := b.h.Send(context.Background(), "match-7", "kickoff", 1); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, c, "kickoff")
}

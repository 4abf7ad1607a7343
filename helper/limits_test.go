package helper_test

// Input limits (helper.Limits, Options.AllowedOrigins) over real sockets:
// each limit bites where documented, answers as documented, harms nobody
// else, and is off when set negative.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/protocol"
	"github.com/gobwas/ws"
)

func withLimits(l helper.Limits) func(*helper.Config) {
	return func(cfg *helper.Config) { cfg.Options.Limits = l }
}

func nested(depth int) string {
	return strings.Repeat("[", depth) + "1" + strings.Repeat("]", depth)
}

// A message nested deeper than MaxJSONDepth gets "Invalid message format"
// and never reaches the message handler; the connection stays. At the limit
// it passes.
func TestMaxJSONDepth(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, withLimits(helper.Limits{MaxJSONDepth: 8}))
		c, _ := k.login("u1")
		// The object around data is one level: data of depth 7 is 8 in all.
		_ = c.SendText(`{"event":"chat","data":` + nested(7) + `}`)
		k.rec.waitFor(t, "the message at the limit", func() bool { return len(k.rec.messages) == 1 })
		_ = c.SendText(`{"event":"chat","data":` + nested(8) + `}`)
		expectError(t, c, protocol.ErrTextInvalidFormat)
		// Deep and unbalanced, before authentication too (within
		// MaxUnauthenticatedPayload).
		u := k.dial()
		_ = u.SendText(strings.Repeat("[", 10000))
		expectError(t, u, protocol.ErrTextInvalidFormat)
		roundTrip(t, c)
		if n := k.rec.messageCount(); n != 1 {
			t.Fatalf("message handler saw %d messages, want only the one at the limit", n)
		}
	})
}

func TestMaxJSONDepthOff(t *testing.T) {
	k := newKit(t, rawSocket, withLimits(helper.Limits{MaxJSONDepth: -1}))
	c, _ := k.login("u1")
	_ = c.SendText(`{"event":"chat","data":` + nested(500) + `}`)
	k.rec.waitFor(t, "the deep message", func() bool { return len(k.rec.messages) == 1 })
}

// Over MessagesPerSecond/MessageBurst: error "Rate limit exceeded", then
// close 1008 with the same reason. Other clients are not affected.
func TestMessageRateLimit(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		// 0.1/s: nothing refills during the test.
		k := newKit(t, tr, withLimits(helper.Limits{MessagesPerSecond: 0.1, MessageBurst: 5}))
		c, _ := k.login("u1") // authenticate is message 1
		other, _ := k.login("u2")
		for i := 0; i < 3; i++ {
			_ = c.Heartbeat()
		}
		roundTrip(t, c) // message 5: still answered
		_ = c.Heartbeat()
		expectError(t, c, "Rate limit exceeded")
		expectClose(t, c, 1008, "Rate limit exceeded")
		roundTrip(t, other)
		// A limited client before authentication is closed the same way.
		u := k.dial()
		for i := 0; i < 6; i++ {
			_ = u.Heartbeat()
		}
		expectError(t, u, "Rate limit exceeded")
		expectClose(t, u, 1008, "Rate limit exceeded")
		if n := k.h.Stats().RateLimited; n != 2 {
			t.Fatalf("Stats().RateLimited = %d, want 2", n)
		}
	})
}

// Pings are charged like messages: each costs the server a pong.
func TestPingsCountAgainstTheMessageRate(t *testing.T) {
	k := newKit(t, rawSocket, withLimits(helper.Limits{MessagesPerSecond: 0.1, MessageBurst: 5}))
	c, _ := k.login("u1") // authenticate is message 1
	for i := 0; i < 5; i++ {
		if err := c.WriteFrame(ws.NewPingFrame([]byte("p"))); err != nil {
			t.Fatal(err)
		}
	}
	expectError(t, c, "Rate limit exceeded")
	expectClose(t, c, 1008, "Rate limit exceeded")
}

// Pongs nobody asked for cost a read each: they are charged like pings.
func TestPongsCountAgainstTheMessageRate(t *testing.T) {
	k := newKit(t, rawSocket, withLimits(helper.Limits{MessagesPerSecond: 0.1, MessageBurst: 5}))
	c, _ := k.login("u1") // authenticate is message 1
	for i := 0; i < 5; i++ {
		if err := c.WriteFrame(ws.NewPongFrame([]byte("p"))); err != nil {
			t.Fatal(err)
		}
	}
	expectError(t, c, "Rate limit exceeded")
	expectClose(t, c, 1008, "Rate limit exceeded")
}

// Each frame of a fragmented message is charged: a message cut into many
// frames counts as many, while one in fewer frames than the budget left
// is delivered whole.
func TestFragmentsCountAgainstTheMessageRate(t *testing.T) {
	k := newKit(t, rawSocket, withLimits(helper.Limits{MessagesPerSecond: 0.1, MessageBurst: 6}))
	c, _ := k.login("u1") // authenticate is message 1
	parts := []string{"not ", "js", "on"}
	for i, p := range parts { // three frames: 4 of 6 spent
		op := ws.OpContinuation
		if i == 0 {
			op = ws.OpText
		}
		if err := c.WriteRaw(rawFrame(i == len(parts)-1, 0, op, true, []byte(p))); err != nil {
			t.Fatal(err)
		}
	}
	// Delivered whole: "not json" is answered as one message.
	expectError(t, c, protocol.ErrTextInvalidFormat)
	// A message of many empty fragments: its first frame is the 5th,
	// then the 6th, then over the budget.
	if err := c.WriteRaw(rawFrame(false, 0, ws.OpText, true, []byte(`{"event":`))); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ { // the second is over (a third in case a token was refilled)
		// Once over, the server may have closed before the last writes.
		if err := c.WriteRaw(rawFrame(false, 0, ws.OpContinuation, true, nil)); err != nil && i < 1 {
			t.Fatal(err)
		}
	}
	expectError(t, c, "Rate limit exceeded")
	expectClose(t, c, 1008, "Rate limit exceeded")
}

// A message in N frames costs N, its first frame included: three frames
// after the authentication do not fit a budget of three.
func TestFragmentedMessageCostsEveryFrame(t *testing.T) {
	k := newKit(t, rawSocket, withLimits(helper.Limits{MessagesPerSecond: 0.01, MessageBurst: 3}))
	c, _ := k.login("u1") // 1 of 3
	for i, p := range []string{"not ", "js", "on"} {
		op := ws.OpContinuation
		if i == 0 {
			op = ws.OpText
		}
		if err := c.WriteRaw(rawFrame(i == 2, 0, op, true, []byte(p))); err != nil && i < 2 {
			t.Fatal(err)
		}
	}
	expectError(t, c, "Rate limit exceeded")
	expectClose(t, c, 1008, "Rate limit exceeded")
}

func TestMessageRateLimitOff(t *testing.T) {
	k := newKit(t, rawSocket, withLimits(helper.Limits{MessagesPerSecond: -1, MessageBurst: 1}))
	c, _ := k.login("u1")
	for i := 0; i < 500; i++ {
		_ = c.Heartbeat()
	}
	roundTrip(t, c)
	expectNoError(t, c, true)
}

func joinRequests(k *kit) []helper.ValidateRoomRequest {
	k.rec.mu.Lock()
	defer k.rec.mu.Unlock()
	return slices.Clone(k.rec.joins)
}

func roomNames(prefix string, n int) []string {
	rooms := make([]string, n)
	for i := range rooms {
		rooms[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return rooms
}

// A join asking for more than MaxRoomsPerJoin names is cut to the first
// ones (after dropping invalid names and duplicates).
func TestMaxRoomsPerJoin(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, withLimits(helper.Limits{MaxRoomsPerJoin: 3}))
		c, cd := k.login("u1")
		_ = c.Emit(protocol.EventJoin, map[string]any{"rooms": []any{"", "r0", "r0", 5, "ws:x", "r1", "r2", "r3", "r4"}})
		expectError(t, c, protocol.ErrTextJoinTooLarge) // the client is told of the cut
		k.rec.waitFor(t, "validate-room call", func() bool { return len(k.rec.joins) == 1 })
		if got := joinRequests(k)[0].Rooms; !slices.Equal(got, []string{"r0", "r1", "r2"}) {
			t.Fatalf("validate-room got %q, want the first three valid names", got)
		}
		roundTrip(t, c)
		v, _ := k.h.GetClient(cd.ID)
		if slices.Contains(v.Rooms, "r3") || !slices.Contains(v.Rooms, "r2") {
			t.Fatalf("rooms after a capped join: %v", v.Rooms)
		}
		// Exactly the cap: nothing to say.
		_ = c.Join("s0", "s1", "s2")
		k.rec.waitFor(t, "second validate-room call", func() bool { return len(k.rec.joins) == 2 })
		expectNoError(t, c, true)
	})
}

// A join of exactly MaxRoomsPerJoin rooms whose list goes on with a
// duplicate or a name that is no room cuts nothing: the client, told "Too
// many rooms in one join", takes rooms it is in for refused (the error is
// documented as "the names after the first N valid ones are ignored").
func TestMaxRoomsPerJoinNoErrorWhenNothingIsCut(t *testing.T) {
	k := newKit(t, rawSocket, withLimits(helper.Limits{MaxRoomsPerJoin: 3}))
	c, _ := k.login("u1")
	_ = c.Emit(protocol.EventJoin, map[string]any{"rooms": []any{"s0", "s1", "s2", "s0", "", 5}})
	k.rec.waitFor(t, "validate-room call", func() bool { return len(k.rec.joins) == 1 })
	if got := joinRequests(k)[0].Rooms; !slices.Equal(got, []string{"s0", "s1", "s2"}) {
		t.Fatalf("validate-room got %q", got)
	}
	expectNoError(t, c, true)
}

// A client at MaxRoomsPerClient that joins a room it is already in (a
// client re-sending its joins after a hiccup) is not refused anything, yet
// is told "Room limit reached".
func TestMaxRoomsPerClientNoErrorForARoomAlreadyJoined(t *testing.T) {
	k := newKit(t, rawSocket, withLimits(helper.Limits{MaxRoomsPerClient: 5}))
	c, cd := k.login("u1") // own id + ws-default + ws-notification = 3
	_ = c.Join("a", "b")
	k.rec.waitFor(t, "validate-room call", func() bool { return len(k.rec.joins) == 1 })
	roundTrip(t, c)
	if v, _ := k.h.GetClient(cd.ID); len(v.Rooms) != 5 {
		t.Fatalf("rooms = %v, want 5", v.Rooms)
	}
	_ = c.Join("a")
	expectNoError(t, c, true)
}

func TestMaxRoomsPerJoinOff(t *testing.T) {
	k := newKit(t, rawSocket, withLimits(helper.Limits{MaxRoomsPerJoin: -1, MaxRoomsPerClient: -1}))
	c, cd := k.login("u1")
	_ = c.Join(roomNames("r", 600)...)
	k.rec.waitFor(t, "validate-room call", func() bool { return len(k.rec.joins) == 1 })
	if n := len(joinRequests(k)[0].Rooms); n != 600 {
		t.Fatalf("validate-room got %d names, want all 600", n)
	}
	roundTrip(t, c)
	if v, _ := k.h.GetClient(cd.ID); len(v.Rooms) != 603 {
		t.Fatalf("client in %d rooms, want 600 + own + 2 default", len(v.Rooms))
	}
}

// MaxRoomsPerClient counts the own-id and default rooms; client joins past
// it are refused (the callback is not even asked once the client is full),
// server-side JoinRoom is not capped, and leaving makes room again.
func TestMaxRoomsPerClient(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, withLimits(helper.Limits{MaxRoomsPerClient: 5}))
		c, cd := k.login("u1") // own id + ws-default + ws-notification = 3
		_ = c.Join("a", "b", "c")
		k.rec.waitFor(t, "validate-room call", func() bool { return len(k.rec.joins) == 1 })
		expectError(t, c, protocol.ErrTextRoomLimit) // c did not fit
		roundTrip(t, c)
		v, _ := k.h.GetClient(cd.ID)
		if len(v.Rooms) != 5 || !slices.Contains(v.Rooms, "a") || !slices.Contains(v.Rooms, "b") || slices.Contains(v.Rooms, "c") {
			t.Fatalf("rooms = %v, want own, defaults, a and b", v.Rooms)
		}
		_ = c.Join("d")
		expectError(t, c, protocol.ErrTextRoomLimit)
		if n := len(joinRequests(k)); n != 1 {
			t.Fatalf("validate-room asked %d times; a full client's join must not reach it", n)
		}
		if !k.h.JoinRoom(cd.ID, "server-side") {
			t.Fatal("server-side JoinRoom refused past the client cap")
		}
		_ = c.Leave("a", "b", "server-side")
		_ = c.Join("d")
		k.rec.waitFor(t, "second validate-room call", func() bool { return len(k.rec.joins) == 2 })
		roundTrip(t, c)
		v, _ = k.h.GetClient(cd.ID)
		if !slices.Contains(v.Rooms, "d") {
			t.Fatalf("join after leaving refused: %v", v.Rooms)
		}
		expectNoError(t, c, true)
	})
}

// A leave is read up to MaxRoomsPerClient names; the rest are ignored.
func TestLeaveReadsUpToMaxRoomsPerClientNames(t *testing.T) {
	k := newKit(t, rawSocket, withLimits(helper.Limits{MaxRoomsPerClient: 5}))
	c, cd := k.login("u1")
	_ = c.Join("a", "b")
	roundTrip(t, c)
	_ = c.Leave(append(roomNames("x", 5), "a")...) // "a" is the sixth name
	roundTrip(t, c)
	if v, _ := k.h.GetClient(cd.ID); !slices.Contains(v.Rooms, "a") {
		t.Fatalf("left a room named past the cap: %v", v.Rooms)
	}
	_ = c.Leave("x", "a")
	roundTrip(t, c)
	if v, _ := k.h.GetClient(cd.ID); slices.Contains(v.Rooms, "a") || !slices.Contains(v.Rooms, "b") {
		t.Fatalf("rooms after leaving a: %v", v.Rooms)
	}
}

func isStatus(err error, code int) bool {
	var se ws.StatusError
	return errors.As(err, &se) && int(se) == code
}

// Past MaxPendingConnections, upgrades get HTTP 503; a slot comes back when
// a pending client authenticates or goes away.
func TestMaxPendingConnections(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, withLimits(helper.Limits{MaxPendingConnections: 2}))
		a := k.dial()
		b := k.dial()
		if _, err := fxtest.Dial(context.Background(), k.url); !isStatus(err, http.StatusServiceUnavailable) {
			t.Fatalf("third pending dial: err = %v, want HTTP 503", err)
		}
		if _, err := a.Authenticate(context.Background(), map[string]any{"token": "valid-u1"}); err != nil {
			t.Fatal(err)
		}
		c := k.dial() // a is no longer pending
		_ = b.Abort()
		eventually(t, "the aborted client's slot", func() bool {
			x, err := fxtest.Dial(context.Background(), k.url)
			if err != nil {
				return false
			}
			k.t.Cleanup(func() { _ = x.Abort() })
			return true
		})
		// A failed authentication gives its slot back too.
		if _, err := c.Authenticate(context.Background(), map[string]any{"token": "wrong"}); err == nil {
			t.Fatal("authentication with a wrong token succeeded")
		}
		eventually(t, "the rejected client's slot", func() bool {
			x, err := fxtest.Dial(context.Background(), k.url)
			if err != nil {
				return false
			}
			k.t.Cleanup(func() { _ = x.Abort() })
			return true
		})
		roundTrip(t, a)
	})
}

// Past MaxConnections, upgrades get HTTP 503; a disconnect frees a slot.
func TestMaxConnections(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, withLimits(helper.Limits{MaxConnections: 2}))
		a, _ := k.login("u1")
		b, _ := k.login("u2")
		if _, err := fxtest.Dial(context.Background(), k.url); !isStatus(err, http.StatusServiceUnavailable) {
			t.Fatalf("third dial: err = %v, want HTTP 503", err)
		}
		_ = b.Abort()
		eventually(t, "a free slot", func() bool {
			x, err := fxtest.Dial(context.Background(), k.url)
			if err != nil {
				return false
			}
			k.t.Cleanup(func() { _ = x.Abort() })
			return true
		})
		roundTrip(t, a)
		// The new client is registered just after its 101 is written.
		eventually(t, "Stats.Clients = 2", func() bool { return k.h.Stats().Clients == 2 })
	})
}

func TestConnectionLimitsOff(t *testing.T) {
	k := newKit(t, rawSocket, withLimits(helper.Limits{MaxConnections: -1, MaxPendingConnections: -1}))
	for i := 0; i < 50; i++ {
		k.dial()
	}
	eventually(t, "50 clients", func() bool { return k.h.Stats().Clients == 50 })
}

// AllowedOrigins: exact and wildcard-subdomain entries, case-insensitive;
// no Origin header is accepted; anything else gets HTTP 403.
func TestAllowedOrigins(t *testing.T) {
	k := newKit(t, rawSocket, func(cfg *helper.Config) {
		cfg.Options.AllowedOrigins = []string{"https://app.example.com", "https://*.example.org", "localhost:8080"}
	})
	cases := []struct {
		origin string
		ok     bool
	}{
		{"", true},
		{"https://app.example.com", true},
		{"HTTPS://App.Example.com", true},
		{"http://app.example.com", false},
		{"https://app.example.com:8443", false},
		{"https://evil.com", false},
		{"https://app.example.com.evil.com", false},
		{"https://a.example.org", true},
		{"https://x.y.example.org", true},
		{"https://example.org", false},
		{"https://badexample.org", false},
		{"http://localhost:8080", true},
		{"https://localhost:8080", true},
		{"http://localhost:8081", false},
		{"null", false},
	}
	for _, tc := range cases {
		h := http.Header{}
		if tc.origin != "" {
			h.Set("Origin", tc.origin)
		}
		c, err := fxtest.DialHeader(context.Background(), k.url, h)
		switch {
		case tc.ok && err != nil:
			t.Errorf("origin %q refused: %v", tc.origin, err)
		case !tc.ok && !isStatus(err, http.StatusForbidden):
			t.Errorf("origin %q: err = %v, want HTTP 403", tc.origin, err)
		}
		if c != nil {
			_ = c.Abort()
		}
	}
}

// Both the allowlist and CheckOrigin must accept.
func TestAllowedOriginsAndCheckOrigin(t *testing.T) {
	k := newKit(t, rawSocket, func(cfg *helper.Config) {
		cfg.Options.AllowedOrigins = []string{"*"}
		cfg.Options.CheckOrigin = func(r *http.Request) bool { return r.Header.Get("X-Ok") == "1" }
	})
	h := http.Header{"Origin": {"https://anything.test"}}
	if _, err := fxtest.DialHeader(context.Background(), k.url, h); !isStatus(err, http.StatusForbidden) {
		t.Fatalf("CheckOrigin ignored: err = %v", err)
	}
	h.Set("X-Ok", "1")
	c, err := fxtest.DialHeader(context.Background(), k.url, h)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Abort()
}

func TestLimitsValidation(t *testing.T) {
	auth := func(context.Context, helper.AuthenticateRequest) (*helper.AuthResult, error) { return nil, nil }
	for _, o := range []helper.Options{
		{Limits: helper.Limits{MessagesPerSecond: math.NaN()}},
		{Limits: helper.Limits{MessagesPerSecond: math.Inf(1)}},
		{Limits: helper.Limits{MessageBurst: -1}},
		{Limits: helper.Limits{InflatedBytesPerSecond: math.NaN()}},
		{Limits: helper.Limits{InflatedBytesPerSecond: math.Inf(-1)}},
		{Limits: helper.Limits{InflatedBurst: -1}},
		{AllowedOrigins: []string{"https://*"}},
		{AllowedOrigins: []string{"https://a.com/path"}},
		{AllowedOrigins: []string{""}},
		{AllowedOrigins: []string{"://a.com"}},
	} {
		if _, err := helper.New(helper.Config{Options: o, Handlers: helper.Handlers{Authenticate: auth}}); err == nil {
			t.Errorf("New accepted %+v", o)
		}
	}
	h, err := helper.New(helper.Config{Handlers: helper.Handlers{Authenticate: auth}})
	if err != nil {
		t.Fatal(err)
	}
	got := h.Options().Limits
	want := helper.Limits{MaxJSONDepth: 64, MaxRoomsPerJoin: 256, MaxRoomsPerClient: 1024,
		MessagesPerSecond: 1000, MessageBurst: 2000, MaxPendingConnections: 10000,
		MaxUnauthenticatedPayload: 16 << 10, InflatedBytesPerSecond: 1 << 20, InflatedBurst: 1 << 20,
		MaxConnections: got.MaxConnections} // from the open-file limit: TestMaxConnectionsDefault
	if got != want {
		b, _ := json.Marshal(got)
		t.Fatalf("default limits %s", b)
	}
	// The cap before authentication never exceeds MaxPayloadLength; off
	// means MaxPayloadLength.
	for _, tc := range []struct{ maxPayload, set, want int }{
		{8 << 10, 0, 8 << 10}, {64 << 10, 32 << 10, 32 << 10}, {64 << 10, 100 << 10, 64 << 10}, {64 << 10, -1, 64 << 10},
	} {
		o := helper.Options{MaxPayloadLength: tc.maxPayload, Limits: helper.Limits{MaxUnauthenticatedPayload: tc.set}}
		h, err := helper.New(helper.Config{Options: o, Handlers: helper.Handlers{Authenticate: auth}})
		if err != nil {
			t.Fatal(err)
		}
		if got := h.Options().Limits.MaxUnauthenticatedPayload; got != tc.want {
			t.Errorf("MaxPayloadLength %d, MaxUnauthenticatedPayload %d: effective %d, want %d", tc.maxPayload, tc.set, got, tc.want)
		}
	}
	// The inflate budget always holds one message of the largest size,
	// unless it is off.
	for _, tc := range []struct {
		maxPayload, set, want int
		rate                  float64
	}{
		{8 << 20, 0, 8 << 20, 0}, {64 << 10, 1 << 10, 64 << 10, 0}, {64 << 10, 100 << 10, 100 << 10, 0}, {8 << 20, 0, 1 << 20, -1},
	} {
		o := helper.Options{MaxPayloadLength: tc.maxPayload, Limits: helper.Limits{InflatedBurst: tc.set, InflatedBytesPerSecond: tc.rate}}
		h, err := helper.New(helper.Config{Options: o, Handlers: helper.Handlers{Authenticate: auth}})
		if err != nil {
			t.Fatal(err)
		}
		if got := h.Options().Limits.InflatedBurst; got != tc.want {
			t.Errorf("MaxPayloadLength %d, InflatedBurst %d, rate %v: effective %d, want %d", tc.maxPayload, tc.set, tc.rate, got, tc.want)
		}
	}
}

// Before authenticating, a message longer than MaxUnauthenticatedPayload,
// plain or once inflated, closes the client with 1009 as past
// MaxPayloadLength; one within it is served, and once authenticated the
// client has the whole MaxPayloadLength. Nobody else is touched.
func TestMaxUnauthenticatedPayload(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, func(cfg *helper.Config) {
			cfg.Options.MaxPayloadLength = 64 << 10
			cfg.Options.PerMessageDeflate = true
			cfg.Options.Limits = helper.Limits{MaxUnauthenticatedPayload: 4 << 10}
		})
		other, _ := k.login("bystander")
		ctx := context.Background()

		c := k.dial()
		if _, err := c.Authenticate(ctx, map[string]any{"token": "valid-u1", "pad": strings.Repeat("p", 3<<10)}); err != nil {
			t.Fatalf("an authenticate within the cap: %v", err)
		}
		_ = c.Emit("chat", strings.Repeat("a", 32<<10))
		k.rec.waitFor(t, "a 32 KiB message once authenticated", func() bool { return len(k.rec.messages) == 1 })

		over := `{"event":"authenticate","data":{"token":"valid-u2","pad":"` + strings.Repeat("p", 4<<10) + `"}}`
		u := k.dial()
		_ = u.SendText(over)
		expectClose(t, u, 1009, "Received too big message")

		// Compressed: a few hundred bytes that inflate past the cap.
		z := k.dialCompressed()
		_ = z.SendText(over)
		expectClose(t, z, 1009, "Received too big message")

		roundTrip(t, other)
		roundTrip(t, c)
	})
}

func TestMaxUnauthenticatedPayloadOff(t *testing.T) {
	k := newKit(t, rawSocket, func(cfg *helper.Config) {
		cfg.Options.MaxPayloadLength = 64 << 10
		cfg.Options.Limits = helper.Limits{MaxUnauthenticatedPayload: -1}
	})
	u := k.dial()
	_ = u.Emit("chat", strings.Repeat("a", 32<<10))
	expectError(t, u, protocol.ErrTextNotAuthenticated)
}

// Compressed messages spend the client's inflate budget by their inflated
// size; the one that needs more than is left gets "Rate limit exceeded" and
// closes the client with 1008, without reaching the handler or being
// inflated past the budget. Plain messages spend nothing, and nobody else
// is touched. A new connection starts with four MaxPayloadLength of budget.
func TestInflateBudget(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, func(cfg *helper.Config) {
			cfg.Options.MaxPayloadLength = 64 << 10
			cfg.Options.PerMessageDeflate = true
			// 1 byte a second: nothing refills during the test.
			cfg.Options.Limits = helper.Limits{InflatedBytesPerSecond: 1, InflatedBurst: 400 << 10}
		})
		other, _ := k.login("bystander")
		ctx := context.Background()
		c := k.dialCompressed()
		if _, err := c.Authenticate(ctx, map[string]any{"token": "valid-u1"}); err != nil {
			t.Fatal(err)
		}
		chat := func(n int) string { return `{"event":"chat","data":"` + strings.Repeat("z", n) + `"}` }
		for i := 0; i < 4; i++ { // about 232 KiB of the 256 it starts with
			_ = c.SendText(chat(58 << 10))
		}
		// Plain, the same size: not charged.
		for i := 0; i < 3; i++ {
			_ = c.WriteFrame(ws.NewTextFrame([]byte(chat(40 << 10))))
		}
		k.rec.waitFor(t, "seven messages", func() bool { return len(k.rec.messages) == 7 })
		_ = c.SendText(chat(30 << 10)) // over the 24 KiB left
		expectError(t, c, "Rate limit exceeded")
		expectClose(t, c, 1008, "Rate limit exceeded")
		if n := k.rec.messageCount(); n != 7 {
			t.Fatalf("message handler saw %d messages, want the seven within the budget", n)
		}
		if n := k.h.Stats().RateLimited; n != 1 {
			t.Fatalf("Stats().RateLimited = %d, want 1", n)
		}
		roundTrip(t, other)
	})
}

func TestInflateBudgetOff(t *testing.T) {
	k := newKit(t, rawSocket, func(cfg *helper.Config) {
		cfg.Options.MaxPayloadLength = 64 << 10
		cfg.Options.PerMessageDeflate = true
		cfg.Options.Limits = helper.Limits{InflatedBytesPerSecond: -1, InflatedBurst: 1}
	})
	c := k.dialCompressed()
	if _, err := c.Authenticate(context.Background(), map[string]any{"token": "valid-u1"}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		_ = c.Emit("chat", strings.Repeat("z", 60<<10))
	}
	k.rec.waitFor(t, "twenty messages of 60 KiB", func() bool { return len(k.rec.messages) == 20 })
	expectNoError(t, c, true)
}

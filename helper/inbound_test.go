package helper_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/protocol"
)

// Spec "Inbound messages": every frame updates lastActivity.
func TestInboundUpdatesLastActivity(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, nil)
		c, cd := k.login("u1")
		v0, _ := k.h.GetClient(cd.ID)
		time.Sleep(20 * time.Millisecond)
		_ = c.Heartbeat()
		roundTrip(t, c)
		v1, _ := k.h.GetClient(cd.ID)
		if !v1.LastActivity.After(v0.LastActivity) {
			t.Fatalf("lastActivity did not move: %v → %v", v0.LastActivity, v1.LastActivity)
		}
	})
}

// Not JSON → "Invalid message format"; no (string) event → ignored; the
// connection stays in every case.
func TestInvalidAndEventlessMessages(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, nil)
		for _, authed := range []bool{false, true} {
			c := k.dial()
			if authed {
				if _, err := c.Authenticate(context.Background(), map[string]any{"token": "valid-u1"}); err != nil {
					t.Fatal(err)
				}
			}
			for _, junk := range []string{"not json", "{", `{"event":}`, "null", "", "  ", `{"event":"x"} trailing`, "\x00"} {
				if err := c.SendText(junk); err != nil {
					t.Fatal(err)
				}
				expectError(t, c, protocol.ErrTextInvalidFormat)
			}
			for _, ignored := range []string{`{}`, `{"data":1}`, `{"event":""}`, `{"event":5,"data":1}`,
				`{"event":null}`, `{"event":["chat"]}`, `{"event":{"a":1}}`, `[1,2]`, `42`, `"chat"`, `true`} {
				if err := c.SendText(ignored); err != nil {
					t.Fatal(err)
				}
			}
			expectNoError(t, c, authed)
			roundTrip(t, c)
		}
		if n := k.rec.messageCount(); n != 0 {
			t.Fatalf("message callback called %d times for eventless messages", n)
		}
	})
}

// heartbeat → nothing else, in any state; other events before
// authentication → "Not authenticated".
func TestHeartbeatAndNotAuthenticated(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, nil)
		c := k.dial()
		_ = c.Heartbeat()
		_ = c.Emit(protocol.EventHeartbeat, map[string]any{"x": 1})
		expectNoError(t, c, false)
		for _, ev := range []string{"chat", protocol.EventJoin, protocol.EventLeave, protocol.EventConnected} {
			_ = c.Emit(ev, map[string]any{"rooms": []string{"a"}})
			expectError(t, c, protocol.ErrTextNotAuthenticated)
		}
		if n := k.rec.messageCount(); n != 0 {
			t.Fatalf("message callback ran for an unauthenticated client")
		}
		if _, err := c.Authenticate(context.Background(), map[string]any{"token": "valid-u1"}); err != nil {
			t.Fatal(err)
		}
		_ = c.Heartbeat()
		expectNoError(t, c, true)
	})
}

// join: names are sanitised before the callback, which decides the subset.
func TestJoinSanitisingAndValidation(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, nil)
		c, cd := k.login("u1")
		long256 := strings.Repeat("a", 256)
		long257 := strings.Repeat("a", 257)
		clef128 := strings.Repeat("𝄞", 128)   // 256 UTF-16 code units, 512 bytes
		clef129 := strings.Repeat("𝄞", 129)   // 258 units
		eacute256 := strings.Repeat("é", 256) // 256 units, 512 bytes
		raw, _ := json.Marshal(map[string]any{"event": "join", "data": map[string]any{"rooms": []any{
			"room-a", "", "ws:internal:broadcast", "ws:x", 7, nil, true, []string{"x"}, map[string]any{},
			long256, long257, clef128, clef129, eacute256, "deny-secret", "room-a", "room-b",
		}}})
		_ = c.SendText(string(raw))
		k.rec.waitFor(t, "validate-room call", func() bool { return len(k.rec.joins) == 1 })
		req := k.rec.joins[0]
		want := []string{"room-a", long256, clef128, eacute256, "deny-secret", "room-b"}
		if req.ClientID != cd.ID || req.UserID != "u1" || !slices.Equal(req.Rooms, want) {
			t.Fatalf("validate-room got %+v\nwant rooms %q", req, want)
		}
		roundTrip(t, c)
		v, _ := k.h.GetClient(cd.ID)
		for _, r := range []string{"room-a", "room-b", long256, clef128, eacute256} {
			if !slices.Contains(v.Rooms, r) {
				t.Fatalf("not joined %q: %v", r, v.Rooms)
			}
		}
		if slices.Contains(v.Rooms, "deny-secret") {
			t.Fatal("joined a room the callback refused")
		}
		_, _ = k.h.SendToRoom("room-b", "in-b", 1)
		expectEvent(t, c, "in-b")

		// Nothing valid left → the callback is not asked.
		_ = c.Emit(protocol.EventJoin, map[string]any{"rooms": []any{"", "ws:x", 3}})
		// Wrong shapes of data.
		for _, bad := range []string{
			`{"event":"join"}`, `{"event":"join","data":null}`, `{"event":"join","data":"room"}`,
			`{"event":"join","data":["room"]}`, `{"event":"join","data":{"rooms":"room"}}`,
			`{"event":"join","data":{"rooms":{"0":"room"}}}`, `{"event":"join","data":{"rooms":null}}`,
			`{"event":"join","data":{"room":["x"]}}`, `{"event":"join","data":{"rooms":[]}}`,
		} {
			_ = c.SendText(bad)
		}
		roundTrip(t, c)
		k.rec.mu.Lock()
		n := len(k.rec.joins)
		k.rec.mu.Unlock()
		if n != 1 {
			t.Fatalf("validate-room called %d times, want 1", n)
		}
		expectNoError(t, c, true)
	})
}

// Without a validate-room callback, client joins are rejected silently.
func TestJoinWithoutValidator(t *testing.T) {
	k := newKit(t, rawSocket, func(c *helper.Config) { c.Handlers.ValidateRoom = nil })
	c, cd := k.login("u1")
	_ = c.Join("room-a")
	roundTrip(t, c)
	v, _ := k.h.GetClient(cd.ID)
	if slices.Contains(v.Rooms, "room-a") {
		t.Fatal("joined without a validator")
	}
	expectNoError(t, c, true)
}

// A failing or panicking validator joins nothing and disconnects nobody.
func TestJoinValidatorFailure(t *testing.T) {
	for _, mode := range []string{"error", "panic"} {
		t.Run(mode, func(t *testing.T) {
			k := newKit(t, rawSocket, func(c *helper.Config) {
				c.Handlers.ValidateRoom = func(context.Context, helper.ValidateRoomRequest) ([]string, error) {
					if mode == "panic" {
						panic("validator exploded")
					}
					return []string{"room-a"}, errors.New("validator failed")
				}
			})
			c, cd := k.login("u1")
			_ = c.Join("room-a")
			roundTrip(t, c)
			if v, _ := k.h.GetClient(cd.ID); slices.Contains(v.Rooms, "room-a") {
				t.Fatal("joined despite a failing validator")
			}
		})
	}
}

// leave: only joined rooms are left; the own-id room never.
func TestLeaveRules(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, nil)
		c, cd := k.login("u1")
		_ = c.Join("room-a", "room-b")
		roundTrip(t, c)
		_ = c.Leave("room-a", cd.ID, "never-joined", "")
		_ = c.SendText(`{"event":"leave","data":{"rooms":[1,null,{"x":1}]}}`)
		_ = c.SendText(`{"event":"leave","data":"room-b"}`)
		_ = c.SendText(`{"event":"leave"}`)
		roundTrip(t, c)
		v, _ := k.h.GetClient(cd.ID)
		want := []string{cd.ID, "room-b", protocol.DefaultRoom, protocol.DefaultNotificationRoom}
		slices.Sort(want)
		if !slices.Equal(v.Rooms, want) {
			t.Fatalf("rooms %v, want %v", v.Rooms, want)
		}
		if k.h.Stats().Rooms != 4 {
			t.Fatalf("room index %+v (room-a should be gone)", k.h.Stats())
		}
		if len(k.h.GetClientsByRoom("never-joined")) != 0 {
			t.Fatal("leave created a room")
		}
		_, _ = k.h.SendToRoom(cd.ID, "own", 1)
		expectEvent(t, c, "own")
		_ = c.Leave(protocol.DefaultRoom)
		roundTrip(t, c)
		if v, _ := k.h.GetClient(cd.ID); slices.Contains(v.Rooms, protocol.DefaultRoom) {
			t.Fatal("default room not left")
		}
	})
}

// Anything else goes to the message callback; server-to-client events sent
// by a client are ignored. (What happens to a client's `encrypted` event is
// the encryption layer's business and is tested there.)
func TestMessageCallback(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, nil)
		c, cd := k.login("u1")
		for _, ev := range []string{protocol.EventConnected, protocol.EventDisconnect, protocol.EventError} {
			_ = c.Emit(ev, map[string]any{"x": 1})
		}
		_ = c.SendText(`{"event":"chat","data":{"text":"hi"},"id":"m-1"}`)
		_ = c.SendText(`{"event":"chat","data":[1,"two"],"id":5}`)
		k.rec.waitFor(t, "two messages", func() bool { return len(k.rec.messages) == 2 })
		roundTrip(t, c)
		k.rec.mu.Lock()
		msgs := slices.Clone(k.rec.messages)
		k.rec.mu.Unlock()
		if len(msgs) != 2 {
			t.Fatalf("%d messages, want 2 (server events must be ignored): %+v", len(msgs), msgs)
		}
		m := msgs[0]
		if m.ClientID != cd.ID || m.UserID != "u1" || m.Message.Event != "chat" ||
			string(m.Message.Data) != `{"text":"hi"}` || m.Message.ID != "m-1" {
			t.Fatalf("message %+v", m)
		}
		if msgs[1].Message.ID != "" || string(msgs[1].Message.Data) != `[1,"two"]` {
			t.Fatalf("message %+v", msgs[1])
		}
	})
}

// Without a callback messages are dropped; a failing or panicking callback
// is counted and disconnects nobody.
func TestMessageCallbackFailures(t *testing.T) {
	t.Run("none", func(t *testing.T) {
		k := newKit(t, rawSocket, func(c *helper.Config) { c.Handlers.Message = nil })
		c, _ := k.login("u1")
		_ = c.Emit("chat", 1)
		roundTrip(t, c)
	})
	for _, mode := range []string{"error", "panic"} {
		t.Run(mode, func(t *testing.T) {
			k := newKit(t, rawSocket, func(c *helper.Config) {
				c.Handlers.Message = func(context.Context, helper.MessageRequest) error {
					if mode == "panic" {
						panic("handler exploded")
					}
					return errors.New("handler failed")
				}
			})
			c, _ := k.login("u1")
			_ = c.Emit("chat", 1)
			_ = c.Emit("chat", 2)
			roundTrip(t, c)
			if n := k.h.Stats().HandlerErrors; n != 2 {
				t.Fatalf("HandlerErrors = %d, want 2", n)
			}
			_, _ = k.h.Broadcast("alive", 1)
			expectEvent(t, c, "alive")
		})
	}
}

// A message callback that blocks holds up only its own client: others are
// read and delivered to meanwhile, and the blocked client still receives.
func TestBlockingCallbackStallsNobodyElse(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		release := make(chan struct{})
		entered := make(chan struct{})
		k := newKit(t, tr, func(c *helper.Config) {
			rec := c.Handlers.Message
			c.Handlers.Message = func(ctx context.Context, req helper.MessageRequest) error {
				if req.Message.Event == "block" {
					close(entered)
					select {
					case <-release:
					case <-ctx.Done():
					}
				}
				return rec(ctx, req)
			}
		})
		a, _ := k.login("a")
		b, _ := k.login("b")
		_ = a.Emit("block", nil)
		select { // a's callback is blocking before b speaks
		case <-entered:
		case <-time.After(5 * time.Second):
			t.Fatal("the blocking callback never ran")
		}
		_ = b.Emit("chat", "from b")
		k.rec.waitFor(t, "b's message while a blocks", func() bool {
			return len(k.rec.messages) == 1 && k.rec.messages[0].UserID == "b"
		})
		_, _ = k.h.Broadcast("news", 1)
		expectEvent(t, a, "news")
		expectEvent(t, b, "news")
		close(release)
		k.rec.waitFor(t, "a's message", func() bool { return len(k.rec.messages) == 2 })
	})
}

// A handler may keep the message's data after it returns: the data must not
// share the read buffer that the next frames are parsed in.
func TestMessageDataOutlivesTheReadBuffer(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, nil)
		c, _ := k.login("u1")
		const n = 200
		want := make([]string, n)
		for i := range n {
			want[i] = fmt.Sprintf(`{"seq":%d,"pad":%q}`, i, strings.Repeat(string(rune('a'+i%26)), 10+i%40))
			if err := c.SendText(`{"event":"chat","id":"m` + fmt.Sprint(i) + `","data":` + want[i] + `}`); err != nil {
				t.Fatal(err)
			}
		}
		k.rec.waitFor(t, "all messages", func() bool { return len(k.rec.messages) == n })
		k.rec.mu.Lock()
		defer k.rec.mu.Unlock()
		for i, m := range k.rec.messages {
			if string(m.Message.Data) != want[i] || m.Message.ID != "m"+fmt.Sprint(i) || m.Message.Event != "chat" {
				t.Fatalf("message %d kept %s %q %s, sent %s", i, m.Message.Event, m.Message.ID, m.Message.Data, want[i])
			}
		}
	})
}

// The same for messages too large for the read buffer, whose frames get
// pooled buffers of their own.
func TestLargeMessageDataOutlivesItsFrame(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, nil)
		c, _ := k.login("u1")
		sizes := []int{5000, 9000, 8192, 70000, 16385, 120000, 5000, 70000} // the default limit is 128 KiB
		want := make([]string, len(sizes))
		for i, n := range sizes {
			want[i] = `"` + strings.Repeat(string(rune('a'+i)), n) + `"`
			if err := c.SendText(`{"event":"big","data":` + want[i] + `}`); err != nil {
				t.Fatal(err)
			}
		}
		k.rec.waitFor(t, "all messages", func() bool { return len(k.rec.messages) == len(sizes) })
		k.rec.mu.Lock()
		defer k.rec.mu.Unlock()
		for i, m := range k.rec.messages {
			if string(m.Message.Data) != want[i] {
				t.Fatalf("message %d (%d bytes) changed after its frame was recycled", i, sizes[i])
			}
		}
	})
}

// A slow callback costs its client nothing: the client heartbeats while
// the server is busy with its message (its frames wait in the socket), and
// is neither closed 4002 nor cut for idleness; once the call is back, the
// clocks run again, and a client that then goes silent is closed as ever.
// (From a user trial: a 4 s handler got a faithful client closed 4002.)
//
// On a connection the server cannot look at (the fallback transport), the
// clocks count from when the app took the message instead; over TLS the
// socket under it is asked (TestHeartbeatingClientKeptDuringASlowCallOverTLS).
func TestSlowCallbackCostsTheClientNothing(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		if tr == wrappedConn {
			t.Skip("the socket cannot be asked whether the client is still sending")
		}
		const timeout = 400 * time.Millisecond
		handled := make(chan struct{})
		k := newKit(t, tr, func(c *helper.Config) {
			c.Options.IdleTimeout = timeout
			holdMessages(c, timeout, "slow", func(ctx context.Context) error {
				defer close(handled)
				select {
				case <-time.After(4 * timeout):
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
		})
		c, _ := k.login("patient")
		_ = c.Emit("slow", nil)
		for range 16 { // 4 timeouts, heartbeating as a client should
			time.Sleep(timeout / 4)
			if err := c.Heartbeat(); err != nil {
				t.Fatalf("heartbeat while the callback ran: %v", err)
			}
		}
		<-handled
		roundTrip(t, c)
		if c.Closed() {
			t.Fatal("the client was closed while the server was busy with its message")
		}
		expectClose(t, c, protocol.CloseHeartbeatTimeout, protocol.ReasonHeartbeatTimeout)
	})
}

// The room check and the message handler see what the authenticator said
// of the client, without a GetClient per call (from a user trial).
func TestCallbacksSeeTheClientsMetadata(t *testing.T) {
	k := newKit(t, rawSocket, nil)
	c, _ := k.login("u1")
	if err := c.Join("r1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Emit("chat", 1); err != nil {
		t.Fatal(err)
	}
	k.rec.waitFor(t, "the join and the message", func() bool { return len(k.rec.joins) == 1 && len(k.rec.messages) == 1 })
	k.rec.mu.Lock()
	defer k.rec.mu.Unlock()
	if got := k.rec.joins[0].Metadata["role"]; got != "user" {
		t.Errorf("room check saw metadata %v", k.rec.joins[0].Metadata)
	}
	if got := k.rec.messages[0].Metadata["role"]; got != "user" {
		t.Errorf("message handler saw metadata %v", k.rec.messages[0].Metadata)
	}
}

package helper_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/protocol"
	"github.com/gobwas/ws"
)

// Publish goes to the other instances only, with exclude.
func TestPublishReachesOtherInstancesOnly(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		a, b := pair(t, tr)
		ctx := context.Background()
		ac, _ := a.login("u1")
		b1, b1cd := b.login("u1")
		b2, _ := b.login("u2")
		if err := a.h.Publish(ctx, protocol.TypeRoom, protocol.DefaultRoom, "pub-room", 1, b1cd.ID); err != nil {
			t.Fatal(err)
		}
		expectEvent(t, b2, "pub-room")
		expectNothing(t, b1, "pub-room")
		expectNothing(t, ac, "pub-room")
		_ = a.h.Publish(ctx, protocol.TypeUser, "u1", "pub-user", 2)
		expectEvent(t, b1, "pub-user")
		expectNothing(t, ac, "pub-user")
		_ = a.h.Publish(ctx, protocol.TypeClient, b1cd.ID, "pub-client", 3)
		expectEvent(t, b1, "pub-client")
		_ = a.h.Publish(ctx, protocol.TypeBroadcast, "", "pub-all", 4)
		expectEvent(t, b1, "pub-all")
		expectEvent(t, b2, "pub-all")
		expectNothing(t, ac, "pub-all")
		if err := a.h.Publish(ctx, "bogus", "x", "e", 1); err == nil {
			t.Fatal("unknown type published")
		}
		if err := a.h.Publish(ctx, protocol.TypeRoom, "", "e", 1); err == nil {
			t.Fatal("room envelope without target published")
		}
		if err := a.h.Publish(ctx, protocol.TypeRoom, "r", "e", func() {}); !errors.Is(err, helper.ErrInvalidData) {
			t.Fatalf("unencodable data: %v", err)
		}
	})
}

// Send with exclude spares the listed clients on every instance: a relay
// does not echo a client's message back (from a user trial, which needed
// SendToRoom and Publish for it).
func TestSendExcludesEverywhere(t *testing.T) {
	a, b := pair(t, rawSocket)
	ctx := context.Background()
	sender, scd := a.login("u1")
	local, _ := a.login("u2")
	remote, _ := b.login("u3")
	for _, dest := range []string{protocol.DefaultRoom, ""} {
		if err := a.h.Send(ctx, dest, "cursor", dest, scd.ID); err != nil {
			t.Fatal(err)
		}
		expectEvent(t, local, "cursor")
		expectEvent(t, remote, "cursor")
		expectNothing(t, sender, "cursor")
	}
	// The destination itself excluded: nobody.
	if err := a.h.Send(ctx, scd.ID, "direct", 1, scd.ID); err != nil {
		t.Fatal(err)
	}
	expectNothing(t, sender, "direct")
	// Without exclude, as the original's send: the sender gets it too.
	_ = a.h.Send(ctx, protocol.DefaultRoom, "all", 1)
	expectEvent(t, sender, "all")
	expectEvent(t, remote, "all")
}

// DisconnectUserEverywhere closes the user's connections on every
// instance; a disconnect envelope without a valid code closes nobody and
// is counted as bad.
func TestDisconnectUserEverywhere(t *testing.T) {
	hub := broker.NewMemoryHub()
	a := newKit(t, rawSocket, func(c *helper.Config) { c.Broker = hub.NewBroker() })
	b := newKit(t, rawSocket, func(c *helper.Config) { c.Broker = hub.NewBroker() })
	ctx := context.Background()
	a1, _ := a.login("u1")
	b1, _ := b.login("u1")
	b2, _ := b.login("u1")
	other, _ := b.login("u2")
	if err := a.h.DisconnectUserEverywhere(ctx, "u1", 1000, ""); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*fxtest.Client{a1, b1, b2} {
		expectClose(t, c, 1000, "")
	}
	if err := a.h.DisconnectUserEverywhere(ctx, "u2", 1005, "x"); !errors.Is(err, helper.ErrInvalidCloseCode) {
		t.Fatalf("close code 1005: %v", err)
	}
	// Envelopes from elsewhere that ask for what no close frame carries.
	pub := hub.NewBroker()
	for _, data := range []string{`{"code":1005,"reason":"x"}`, `{"code":"4100"}`, `null`, `{}`} {
		env := `{"serverId":"elsewhere","type":"disconnect-user","target":"u2","event":"disconnect","data":` + data + `}`
		if err := pub.Publish(ctx, protocol.UserChannel("u2"), []byte(env)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the bad envelopes counted", func() bool { return b.h.Stats().BadEnvelopes == 4 })
	roundTrip(t, other)
	// A valid one from an emitter, with a reason longer than a close frame
	// carries: cut to 123 bytes.
	env := `{"serverId":"emitter","type":"disconnect-user","target":"u2","event":"disconnect","data":{"code":4100,"reason":"` + strings.Repeat("r", 200) + `"}}`
	if err := pub.Publish(ctx, protocol.UserChannel("u2"), []byte(env)); err != nil {
		t.Fatal(err)
	}
	expectClose(t, other, 4100, strings.Repeat("r", 123))
}

// One session per user or device (an IoT trial's ask): the new
// connection's callback closes the user's others, on every instance,
// sparing the ids given.
func TestDisconnectUserEverywhereExcept(t *testing.T) {
	hub := broker.NewMemoryHub()
	a := newKit(t, rawSocket, func(c *helper.Config) { c.Broker = hub.NewBroker() })
	b := newKit(t, rawSocket, func(c *helper.Config) { c.Broker = hub.NewBroker() })
	ctx := context.Background()
	a1, _ := a.login("u1")
	a2, newest := a.login("u1")
	b1, _ := b.login("u1")
	b2, kept := b.login("u1")
	if err := a.h.DisconnectUserEverywhere(ctx, "u1", 4000, "Signed in elsewhere", newest.ID, kept.ID); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*fxtest.Client{a1, b1} {
		expectClose(t, c, 4000, "Signed in elsewhere")
	}
	for _, c := range []*fxtest.Client{a2, b2} {
		roundTrip(t, c)
		if c.Closed() {
			t.Fatal("a connection in except was closed")
		}
	}
	if n, err := b.h.DisconnectUser("u1", 4000, "", kept.ID); err != nil || n != 0 {
		t.Fatalf("DisconnectUser sparing the only connection left: %d %v, want 0 closed", n, err)
	}
}

// Bytes that arrive in the same packet as the upgrade request (buffered by
// the HTTP server) are not lost.
func TestFrameInUpgradePacket(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, nil)
		conn, err := net.Dial("tcp", strings.TrimPrefix(k.srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		req := "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
		frame := rawFrame(true, 0, ws.OpText, true, []byte(`{"event":"authenticate","data":{"token":"valid-early"}}`))
		if _, err := conn.Write(append([]byte(req), frame...)); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade: %v %v", resp, err)
		}
		h, err := ws.ReadHeader(br)
		if err != nil {
			t.Fatal(err)
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(br, p); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(p), `"event":"connected"`) || !strings.Contains(string(p), `"userId":"early"`) {
			t.Fatalf("first frame %s", p)
		}
	})
}

// flakyBroker fails its first Subscribe calls, as a Redis connection that
// drops would.
type flakyBroker struct {
	*broker.Memory
	mu       sync.Mutex
	failures int
}

func (f *flakyBroker) Subscribe(ctx context.Context, channels ...string) error {
	f.mu.Lock()
	fail := f.failures > 0
	if fail {
		f.failures--
	}
	f.mu.Unlock()
	if fail {
		return errors.New("connection reset")
	}
	return f.Memory.Subscribe(ctx, channels...)
}

// A failed subscription is retried: cross-instance delivery to the client
// starts once the broker recovers, and authentication is not held up.
func TestSubscriptionRetry(t *testing.T) {
	hub := broker.NewMemoryHub()
	fb := &flakyBroker{Memory: hub.NewBroker()}
	k := newKit(t, rawSocket, func(c *helper.Config) {
		c.Broker = fb
		c.Options.SubscribeTimeout = time.Second
	})
	fb.mu.Lock()
	fb.failures = 1
	fb.mu.Unlock()
	c, cd := k.login("u1")
	emitter := hub.NewBroker()
	if err := emitter.Start(context.Background(), func(string, []byte) {}); err != nil {
		t.Fatal(err)
	}
	defer emitter.Close()
	env := `{"serverId":"emitter","type":"client","target":"` + cd.ID + `","event":"late"}`
	deadline := time.Now().Add(5 * time.Second)
	for {
		_ = emitter.Publish(context.Background(), protocol.ClientChannel(cd.ID), []byte(env))
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		_, err := c.Expect(ctx, "late")
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("subscription never retried")
		}
	}
	if k.h.Stats().Subscriptions == 0 {
		t.Fatal("no subscriptions held")
	}
}

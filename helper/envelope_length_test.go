package helper_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/protocol"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// An envelope over MaxEnvelopeLength from the broker is dropped, counted
// and logged, and nothing else is held up: one message of tens of
// megabytes published on the Redis (by anyone who can, or a bug) would
// otherwise be sent whole to every client, and sealed once per encrypted
// one.
func TestEnvelopeOverMaxEnvelopeLengthIsDropped(t *testing.T) {
	const limit = 4096
	core, logs := observer.New(zapcore.WarnLevel)
	hub := broker.NewMemoryHub()
	k := newKit(t, rawSocket, func(c *helper.Config) {
		c.Broker = hub.NewBroker()
		c.Logger = zap.New(core)
		c.Options.MaxEnvelopeLength = limit
	})
	c, _ := k.login("u1")
	pub := hub.NewBroker()
	if err := pub.Start(context.Background(), func(string, []byte) {}); err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	// envelope is a broadcast of event whose payload is exactly n bytes.
	envelope := func(event string, n int) []byte {
		head := `{"serverId":"emitter","type":"broadcast","event":"` + event + `","data":"`
		tail := `"}`
		return []byte(head + strings.Repeat("x", n-len(head)-len(tail)) + tail)
	}
	send := func(payload []byte) {
		t.Helper()
		if err := pub.Publish(context.Background(), protocol.ChannelBroadcast, payload); err != nil {
			t.Fatal(err)
		}
	}
	send(envelope("over", limit+1))
	send(envelope("at-limit", limit))
	if m := expectEvent(t, c, "at-limit"); len(m.Data) != limit-len(`{"serverId":"emitter","type":"broadcast","event":"at-limit","data":}`) {
		t.Fatalf("at-limit data of %d bytes", len(m.Data))
	}
	expectNothing(t, c, "over")
	if s := k.h.Stats(); s.BadEnvelopes != 1 || s.Delivered != 1 {
		t.Fatalf("BadEnvelopes = %d, Delivered = %d; want 1 and 1", s.BadEnvelopes, s.Delivered)
	}
	lines := logs.FilterMessage("dropping envelope over MaxEnvelopeLength").All()
	if len(lines) != 1 {
		t.Fatalf("%d warnings, want 1", len(lines))
	}
	f := lines[0].ContextMap()
	if f["bytes"] != int64(limit+1) || f["limit"] != int64(limit) || f["channel"] != protocol.ChannelBroadcast ||
		!strings.HasPrefix(f["start"].(string), `{"serverId":"emitter","type":"broadcast","event":"over"`) || len(f["start"].(string)) > 120 {
		t.Fatalf("warning fields %v", f)
	}
}

// A send whose envelope the other instances would drop fails whole: with
// ErrEnvelopeTooLarge, before this instance's clients got any of it.
func TestSendOverMaxEnvelopeLengthFailsBeforeDelivering(t *testing.T) {
	const limit = 4096
	hub := broker.NewMemoryHub()
	edit := func(c *helper.Config) {
		c.Broker = hub.NewBroker()
		c.Options.MaxEnvelopeLength = limit
	}
	a, b := newKit(t, rawSocket, edit), newKit(t, rawSocket, edit)
	ca, cda := a.login("u1")
	cb, _ := b.login("u1")
	big := strings.Repeat("y", limit)
	ctx := context.Background()
	tooLarge := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, helper.ErrEnvelopeTooLarge) {
			t.Fatalf("%s: error %v, want ErrEnvelopeTooLarge", what, err)
		}
		if !strings.Contains(err.Error(), "the limit is 4096") {
			t.Fatalf("%s: error %q does not give the limit", what, err)
		}
	}
	tooLarge("Send broadcast", a.h.Send(ctx, "", "big", big))
	tooLarge("Send to a local client", a.h.Send(ctx, cda.ID, "big", big))
	tooLarge("Send to a local room", a.h.Send(ctx, protocol.DefaultRoom, "big", big))
	tooLarge("SendToUser", a.h.SendToUser(ctx, "u1", "big", big))
	tooLarge("Publish", a.h.Publish(ctx, protocol.TypeBroadcast, "", "big", big))
	rooms := make([]string, 40)
	for i := range rooms {
		rooms[i] = strings.Repeat("r", 120) + string(rune('A'+i))
	}
	tooLarge("AddUserToRooms", a.h.AddUserToRooms(ctx, "u1", rooms...))
	if a.h.InRoom(cda.ID, rooms[0]) {
		t.Fatal("AddUserToRooms that failed joined the local connection")
	}
	// Just under the limit goes everywhere.
	small := strings.Repeat("z", limit-200)
	if err := a.h.Send(ctx, "", "small", small); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, ca, "small")
	expectEvent(t, cb, "small")
	for name, k := range map[string]*kit{"a": a, "b": b} {
		if s := k.h.Stats(); s.BadEnvelopes != 0 || s.PublishErrors != 0 {
			t.Fatalf("instance %s: BadEnvelopes %d, PublishErrors %d; want none", name, s.BadEnvelopes, s.PublishErrors)
		}
	}
	expectNothing(t, ca, "big")
	expectNothing(t, cb, "big")
}

// The default limit is 16 MiB, and a negative one lifts it.
func TestMaxEnvelopeLengthDefaultAndNoLimit(t *testing.T) {
	if protocol.DefaultMaxEnvelopeLength != 16<<20 {
		t.Fatalf("default %d", protocol.DefaultMaxEnvelopeLength)
	}
	hub := broker.NewMemoryHub()
	k := newKit(t, rawSocket, func(c *helper.Config) {
		c.Broker = hub.NewBroker()
		c.Options.MaxEnvelopeLength = -1
		c.Options.BackpressureLimit = 32 << 20
	})
	c, _ := k.login("u1")
	big := strings.Repeat("y", protocol.DefaultMaxEnvelopeLength)
	if err := k.h.Send(context.Background(), "", "big", big); err != nil {
		t.Fatalf("no limit: %v", err)
	}
	if m := expectEvent(t, c, "big"); len(m.Data) != len(big)+2 {
		t.Fatalf("data of %d bytes", len(m.Data))
	}
	d := newKit(t, rawSocket, func(c *helper.Config) { c.Broker = hub.NewBroker() })
	if err := d.h.Send(context.Background(), "", "big", big); !errors.Is(err, helper.ErrEnvelopeTooLarge) {
		t.Fatalf("default limit: error %v, want ErrEnvelopeTooLarge", err)
	}
}

// DisconnectUserEverywhere whose envelope would be over MaxEnvelopeLength
// (a long except list) fails whole, as the other sends do: with
// ErrEnvelopeTooLarge, before any local connection was closed.
func TestDisconnectUserEverywhereOverMaxEnvelopeLengthClosesNothing(t *testing.T) {
	const limit = 4096
	hub := broker.NewMemoryHub()
	k := newKit(t, rawSocket, func(c *helper.Config) {
		c.Broker = hub.NewBroker()
		c.Options.MaxEnvelopeLength = limit
	})
	c, _ := k.login("u1")
	except := make([]string, 200)
	for i := range except {
		except[i] = strings.Repeat("0", 30) + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	err := k.h.DisconnectUserEverywhere(context.Background(), "u1", 4000, "bye", except...)
	if !errors.Is(err, helper.ErrEnvelopeTooLarge) {
		t.Fatalf("error %v, want ErrEnvelopeTooLarge", err)
	}
	expectNothing(t, c, protocol.EventDisconnect)
	roundTrip(t, c)
	if n := len(k.h.GetClients()); n != 1 {
		t.Fatalf("%d clients, want the one still connected", n)
	}
	// An invalid code is still ErrInvalidCloseCode, whatever the size.
	if err := k.h.DisconnectUserEverywhere(context.Background(), "u1", 999, "bye", except...); !errors.Is(err, helper.ErrInvalidCloseCode) {
		t.Fatalf("invalid code: error %v, want ErrInvalidCloseCode", err)
	}
}

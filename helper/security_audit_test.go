package helper_test

// Problems a security audit found, one test each (adopted from its
// failing tests, renamed).

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/helper"
	"github.com/gobwas/ws"
)

// A frame's buffer follows what has arrived. Sized by the header, 14 bytes
// announcing 128 KiB held 128 KiB of the server's memory until the idle
// timeout: some 9000 times what the client sent.
func TestFrameHeaderAloneHoldsNoPayloadBuffer(t *testing.T) {
	const clients = 64
	k := newKit(t, rawSocket, func(cfg *helper.Config) { cfg.Options.MaxPayloadLength = 128 << 10 })
	var conns []interface{ WriteRaw([]byte) error }
	for i := range clients {
		c, _ := k.login(fmt.Sprintf("u%d", i))
		conns = append(conns, c)
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	// A masked text frame header announcing 128 KiB - 1, and no payload.
	hdr := []byte{0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}
	binary.BigEndian.PutUint64(hdr[2:10], 128<<10-1)
	for _, c := range conns {
		if err := c.WriteRaw(hdr); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	grown := int64(heap()) - int64(before)
	t.Logf("heap grew %d KiB after %d bytes sent (%d headers)", grown>>10, clients*len(hdr), clients)
	if limit := int64(clients * 16 << 10); grown > limit {
		t.Fatalf("heap grew %d KiB for %d frame headers of %d bytes: buffers sized by the header, not by what arrived",
			grown>>10, clients, len(hdr))
	}
}

// A large message that arrives a little at a time, and one that is all
// there, are read whole and exact, as the buffer grows.
func TestLargeFrameReadAsItArrives(t *testing.T) {
	k := newKit(t, rawSocket, nil)
	c, _ := k.login("u1")
	text := strings.Repeat("0123456789abcdef", 100<<10/16)
	msg := []byte(`{"event":"big","data":"` + text + `"}`)
	frame, err := ws.CompileFrame(ws.MaskFrame(ws.NewTextFrame(msg)))
	if err != nil {
		t.Fatal(err)
	}
	for len(frame) > 0 { // trickled: 3 KiB every millisecond
		n := min(len(frame), 3<<10)
		if err := c.WriteRaw(frame[:n]); err != nil {
			t.Fatal(err)
		}
		frame = frame[n:]
		time.Sleep(time.Millisecond)
	}
	if err := c.Emit("big", text); err != nil { // at once
		t.Fatal(err)
	}
	k.rec.waitFor(t, "both messages", func() bool { return len(k.rec.messages) == 2 })
	k.rec.mu.Lock()
	defer k.rec.mu.Unlock()
	for i, m := range k.rec.messages {
		if !bytes.Equal(m.Message.Data, []byte(`"`+text+`"`)) {
			t.Fatalf("message %d: %d bytes of data, want the %d sent", i, len(m.Message.Data), len(text)+2)
		}
	}
}

// A validate-room handler that normalises names (lower case, trimmed) must
// not turn a name into another client's id room: sends to a client on
// another instance travel through that room, so the one who joined it got
// them. The id-room rule now applies to the handler's answer too.
func TestValidateRoomAnswerCannotJoinAnotherClientsIDRoom(t *testing.T) {
	hub := broker.NewMemoryHub()
	a := newKit(t, rawSocket, func(cfg *helper.Config) {
		cfg.Broker = hub.NewBroker()
		cfg.Handlers.ValidateRoom = func(_ context.Context, req helper.ValidateRoomRequest) ([]string, error) {
			out := make([]string, 0, len(req.Rooms))
			for _, r := range req.Rooms {
				out = append(out, strings.ToLower(strings.TrimSpace(r)))
			}
			return out, nil
		}
	})
	b := newKit(t, rawSocket, func(cfg *helper.Config) { cfg.Broker = hub.NewBroker() })
	victim, vcd := a.login("victim")
	attacker, _ := a.login("attacker")
	if err := attacker.Join(strings.ToUpper(vcd.ID), " "+vcd.ID); err != nil {
		t.Fatal(err)
	}
	if err := attacker.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := a.h.SyncSubscriptions(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Instance B sends to the victim, who is not local to B: the message
	// travels as a room envelope on ws:room:<victim id>.
	if err := b.h.Send(context.Background(), vcd.ID, "private", map[string]string{"otp": "123456"}); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, victim, "private")
	expectNothing(t, attacker, "private")
}

// failingBroker is a hub broker whose subscription changes fail while down,
// as the Redis broker's do while Redis is unreachable.
type failingBroker struct {
	broker.Broker
	down atomic.Bool
}

var errBrokerDown = errors.New("broker down (simulated Redis outage)")

func (f *failingBroker) Subscribe(ctx context.Context, ch ...string) error {
	if f.down.Load() {
		return errBrokerDown
	}
	return f.Broker.Subscribe(ctx, ch...)
}

func (f *failingBroker) Unsubscribe(ctx context.Context, ch ...string) error {
	if f.down.Load() {
		return errBrokerDown
	}
	return f.Broker.Unsubscribe(ctx, ch...)
}

// While the broker is down, channels joined and left again must not pile
// up as changes to retry: one client joining and leaving fresh names grew
// the table by 256 names per two messages, for as long as Redis was away,
// and every retry walked and re-sent all of it.
func TestSubscriptionBacklogBoundedDuringOutage(t *testing.T) {
	hub := broker.NewMemoryHub()
	fb := &failingBroker{Broker: hub.NewBroker()}
	k := newKit(t, rawSocket, func(cfg *helper.Config) { cfg.Broker = fb })
	c, _ := k.login("churner")
	fb.down.Store(true)
	const rounds, perJoin = 40, 256 // 80 messages: inside the default burst
	pad := strings.Repeat("x", 200)
	for r := range rounds {
		rooms := make([]string, perJoin)
		for i := range rooms {
			rooms[i] = fmt.Sprintf("public-%d-%d-%s", r, i, pad)
		}
		if err := c.Join(rooms...); err != nil {
			t.Fatal(err)
		}
		if err := c.Leave(rooms...); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // a retry or two
	if n := k.h.PendingSubscriptionChanges(); n > 1100 {
		t.Fatalf("%d channel changes held for a client whose rooms did not change", n)
	}
	// Once the broker is back, what is wanted is subscribed.
	fb.down.Store(false)
	if err := c.Join("public-after"); err != nil {
		t.Fatal(err)
	}
	if err := c.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := k.h.SyncSubscriptions(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := k.h.Send(context.Background(), "public-after", "hello", 1); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, c, "hello")
}

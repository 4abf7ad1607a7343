package helper_test

// From a review of the growing frame buffer, the capped unsubscribes and
// the views with their backlog.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
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

// stallingBroker is a hub broker whose subscription changes, once stalled,
// wait until released and then fail: Redis that stops answering (a network
// partition, a blackholed host) until the call gives up.
type stallingBroker struct {
	*broker.Memory
	mu      sync.Mutex
	gate    chan struct{} // non-nil: calls wait for it, then fail
	entered chan struct{} // signalled when a call starts waiting
}

var errStalled = errors.New("broker stalled (simulated unanswered Redis)")

func (s *stallingBroker) wait(ctx context.Context) error {
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	if gate == nil {
		return nil
	}
	select {
	case s.entered <- struct{}{}:
	default:
	}
	select {
	case <-gate:
	case <-ctx.Done():
	}
	return errStalled
}

func (s *stallingBroker) Subscribe(ctx context.Context, ch ...string) error {
	if err := s.wait(ctx); err != nil {
		return err
	}
	return s.Memory.Subscribe(ctx, ch...)
}

func (s *stallingBroker) Unsubscribe(ctx context.Context, ch ...string) error {
	if err := s.wait(ctx); err != nil {
		return err
	}
	return s.Memory.Unsubscribe(ctx, ch...)
}

// Unsubscribes that arrive while a failing broker call is in flight are
// dropped by forgetUnsubscribes without ever being sent: the count it caps
// includes them, not only the ones held for retry. The broker then keeps
// those channels for good (with Redis: in its want set, subscribed again
// at every reconnect), though no local client is in the rooms. Here a
// client leaves 1280 rooms it had joined (broker up, subscribed) while one
// subscribe waits on an unanswering broker.
func TestUnsubscribesArrivingDuringAFailedCallAreSent(t *testing.T) {
	hub := broker.NewMemoryHub()
	sb := &stallingBroker{Memory: hub.NewBroker(), entered: make(chan struct{}, 1)}
	k := newKit(t, rawSocket, func(cfg *helper.Config) {
		cfg.Broker = sb
		cfg.Options.Limits.MaxRoomsPerClient = 4096
	})
	c, _ := k.login("leaver")
	const groups, perJoin = 5, 256
	room := func(g, i int) string { return fmt.Sprintf("room-%d-%d", g, i) }
	for g := range groups {
		rooms := make([]string, perJoin)
		for i := range rooms {
			rooms[i] = room(g, i)
		}
		if err := c.Join(rooms...); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := k.h.SyncSubscriptions(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !sb.Subscribed(protocol.RoomChannel(room(0, 0))) {
		t.Fatal("setup: the joined room is not subscribed")
	}

	// The broker stops answering; a change waits on it.
	gate := make(chan struct{})
	sb.mu.Lock()
	sb.gate = gate
	sb.mu.Unlock()
	if err := c.Join("trigger"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sb.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("no subscription call reached the broker")
	}
	// Meanwhile the client leaves every room.
	for g := range groups {
		rooms := make([]string, perJoin)
		for i := range rooms {
			rooms[i] = room(g, i)
		}
		if err := c.Leave(rooms...); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The call fails; the broker is back for the retry.
	sb.mu.Lock()
	sb.gate = nil
	sb.mu.Unlock()
	close(gate)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := k.h.SyncSubscriptions(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // any retry
	if err := k.h.SyncSubscriptions(ctx); err != nil {
		t.Fatal(err)
	}
	if !sb.Subscribed(protocol.RoomChannel("trigger")) {
		t.Fatal("the room still wanted was not subscribed after the outage")
	}
	left := 0
	for g := range groups {
		for i := range perJoin {
			if sb.Subscribed(protocol.RoomChannel(room(g, i))) {
				left++
			}
		}
	}
	if left > 0 {
		t.Fatalf("%d of %d rooms left by their only client are still subscribed in the broker after it recovered (pending changes: %d): their unsubscribes were dropped unsent",
			left, groups*perJoin, k.h.PendingSubscriptionChanges())
	}
}

// Frames of every size around the read buffer and the large-frame start,
// fragmented with large continuations and pings between them, some
// compressed, all pipelined in one stream and written in chunks of random
// sizes with pauses: each message arrives exact and in order, on every
// transport (the goroutine and wrapped paths have no SIOCINQ).
func TestLargeFramesPipelinedAndChunked(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, func(cfg *helper.Config) {
			cfg.Options.MaxPayloadLength = 1 << 20
			cfg.Options.PerMessageDeflate = true
			cfg.Options.Limits.InflatedBytesPerSecond = -1
		})
		c := k.dialCompressed()
		if _, err := c.Authenticate(context.Background(), map[string]any{"token": "valid-u"}); err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, uint64(len(tr))))
		sizes := []int{1, 100, 3000, 4070, 4082, 4090, 4096, 4097, 5000, 8180, 8192, 8193, 9000, 16385, 40000, 70000, 131072, 300000, 900000}
		var stream []byte
		var want []string
		for i, size := range append(sizes, sizes...) {
			text := make([]byte, size)
			for j := range text {
				text[j] = 'a' + byte(rng.IntN(26))
			}
			body := fmt.Appendf(nil, `{"event":"m","data":"%d-%s"}`, i, text)
			want = append(want, fmt.Sprintf(`"%d-%s"`, i, text))
			compressed := i%3 == 1
			payload := body
			var rsv byte
			if compressed {
				payload, rsv = fxtest.Deflate(body), 4
			}
			switch i % 4 {
			case 2: // fragmented: a first frame, then continuations of varied sizes, pings between
				cut1 := len(payload) / 3
				cut2 := cut1 + (len(payload)-cut1)/2
				stream = append(stream, rawFrame(false, rsv, ws.OpText, true, payload[:cut1])...)
				stream = append(stream, rawFrame(true, 0, ws.OpPing, true, []byte("p"))...)
				stream = append(stream, rawFrame(false, 0, ws.OpContinuation, true, payload[cut1:cut2])...)
				stream = append(stream, rawFrame(true, 0, ws.OpPing, true, []byte("q"))...)
				stream = append(stream, rawFrame(true, 0, ws.OpContinuation, true, payload[cut2:])...)
			default:
				stream = append(stream, rawFrame(true, rsv, ws.OpText, true, payload)...)
			}
		}
		for len(stream) > 0 {
			n := min(len(stream), 1+rng.IntN(96<<10))
			if err := c.WriteRaw(stream[:n]); err != nil {
				t.Fatal(err)
			}
			stream = stream[n:]
			if rng.IntN(3) == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		k.rec.waitFor(t, "every message", func() bool { return len(k.rec.messages) >= len(want) })
		k.rec.mu.Lock()
		defer k.rec.mu.Unlock()
		if len(k.rec.messages) != len(want) {
			t.Fatalf("%d messages, want %d", len(k.rec.messages), len(want))
		}
		for i, m := range k.rec.messages {
			if string(m.Message.Data) != want[i] {
				t.Fatalf("message %d: %d bytes, want %d (first differs at %d)", i, len(m.Message.Data), len(want[i]), firstDiff(string(m.Message.Data), want[i]))
			}
		}
	})
}

func firstDiff(a, b string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// A polled connection whose last frame was larger than the read buffer
// goes back to the poller like any other once the frame is read: its burst
// must not stay in a blocking read for the next frame, holding a worker
// and a read buffer for as long as the client is quiet. (After such a
// frame the reader sets mayRead, so the burst's next read at the frame
// boundary waits on the socket.)
func TestPolledConnectionIdleAfterALargeFrameHoldsNoBurst(t *testing.T) {
	k := newKit(t, rawSocket, nil)
	const clients = 16
	text := strings.Repeat("x", 6000)
	for i := range clients {
		c, _ := k.login(fmt.Sprintf("u%d", i))
		if err := c.Emit("big", text); err != nil {
			t.Fatal(err)
		}
	}
	k.rec.waitFor(t, "the messages", func() bool { return len(k.rec.messages) == clients })
	time.Sleep(300 * time.Millisecond)
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	waiting := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "helper.(*client).burst") && strings.Contains(g, "helper.(*client).fill") {
			waiting++
		}
	}
	if waiting > 0 {
		t.Fatalf("%d of %d idle polled connections still in a burst waiting in a read after their last (large) frame", waiting, clients)
	}
}

// Views (and their backlog system calls) taken while clients come and go,
// sockets closed meanwhile: no race, no panic, a closed client's backlog
// reads as its queue alone.
func TestViewsWhileClientsChurn(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, nil)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, v := range k.h.GetClients() {
					if v.Backlog < 0 {
						t.Errorf("negative backlog %d", v.Backlog)
					}
					k.h.GetClient(v.ID)
				}
				k.h.GetClientsByUser("churn")
				k.h.GetClientsByRoom("r")
			}
		}()
		for range 30 {
			c, _ := k.login("churn")
			_ = c.Join("r")
			_ = c.Sync(context.Background())
			_ = c.Abort()
		}
		close(stop)
		wg.Wait()
	})
}

// A client that ends its connection inside a large frame is let go with
// nothing delivered, on every transport.
func TestEOFInsideALargeFrame(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, nil)
		c, cd := k.login("eof")
		text := strings.Repeat("y", 100<<10)
		frame := rawFrame(true, 0, ws.OpText, true, fmt.Appendf(nil, `{"event":"m","data":"%s"}`, text))
		if err := c.WriteRaw(frame[:30<<10]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		if tc, ok := c.Conn().(interface{ CloseWrite() error }); ok {
			_ = tc.CloseWrite()
		} else {
			_ = c.Abort()
		}
		k.rec.waitFor(t, "the client gone", func() bool { return slicesContains(k.rec.disconnected, cd.ID) })
		if n := k.rec.messageCount(); n != 0 {
			t.Fatalf("%d messages delivered from a cut frame", n)
		}
		other, _ := k.login("other")
		if err := other.Emit("m", "ok"); err != nil {
			t.Fatal(err)
		}
		k.rec.waitFor(t, "the other's message", func() bool { return len(k.rec.messages) == 1 })
	})
}

package helper_test

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/protocol"
)

// Encrypted recipients go through the outbound transformer in parallel, at
// most EncryptedBatchLimit at a time, and Broadcast returns only once each
// has its frame (so one client's messages keep their order).
func TestEncryptedFanOutIsBounded(t *testing.T) {
	const limit, clients = 3, 9
	var calls concurrency
	k := newKit(t, rawSocket, func(c *helper.Config) {
		requireEncryption(c, limit)
		c.Handlers.OutboundTransformer = func(ctx context.Context, req helper.OutboundRequest) (*protocol.Message, error) {
			calls.enter()
			time.Sleep(20 * time.Millisecond) // long enough for the workers to overlap
			calls.leave()
			b, _ := json.Marshal(map[string]any{"seq": req.Data})
			return &protocol.Message{Event: protocol.EventEncrypted, Data: b}, nil
		}
	})
	var cs []*fxtest.Client
	for i := 0; i < clients; i++ {
		c, _ := k.login("e")
		cs = append(cs, c)
	}
	for seq := 0; seq < 3; seq++ {
		if n, err := k.h.Broadcast("news", seq); err != nil || n != clients {
			t.Fatalf("Broadcast = %d %v", n, err)
		}
	}
	p := calls.highest()
	if p > limit || p < 2 {
		t.Fatalf("peak concurrent transformations %d, want 2..%d", p, limit)
	}
	for _, c := range cs {
		for seq := 0; seq < 3; seq++ {
			m := expectEvent(t, c, protocol.EventEncrypted)
			var d struct{ Seq int }
			if err := json.Unmarshal(m.Data, &d); err != nil || d.Seq != seq {
				t.Fatalf("message %d arrived as %s", seq, m.Data)
			}
		}
	}
}

// Messages from the broker are transformed off the broker's worker (one
// slow call must not hold up every channel), each client's in the order
// they came, at most EncryptedBatchLimit calls at once; a client whose
// calls are slow holds up no other client.
func TestBrokerMessagesTransformedInOrderOffTheWorker(t *testing.T) {
	const limit, clients, msgs = 3, 6, 20
	var calls concurrency
	hub := broker.NewMemoryHub()
	k := newKit(t, rawSocket, func(c *helper.Config) {
		c.Broker = hub.NewBroker()
		requireEncryption(c, limit)
		c.Handlers.OutboundTransformer = func(ctx context.Context, req helper.OutboundRequest) (*protocol.Message, error) {
			calls.enter()
			if req.Client.UserID == "slow" {
				time.Sleep(300 * time.Millisecond)
			} else {
				time.Sleep(time.Millisecond)
			}
			calls.leave()
			b, _ := json.Marshal(map[string]any{"seq": req.Data})
			return &protocol.Message{Event: protocol.EventEncrypted, Data: b}, nil
		}
	})
	slow, _ := k.login("slow")
	var cs []*fxtest.Client
	for i := 0; i < clients; i++ {
		c, _ := k.login("e")
		cs = append(cs, c)
	}
	emitter := hub.NewBroker()
	if err := emitter.Start(context.Background(), func(string, []byte) {}); err != nil {
		t.Fatal(err)
	}
	defer emitter.Close()
	start := time.Now()
	for seq := 0; seq < msgs; seq++ {
		payload := `{"serverId":"emitter","type":"broadcast","event":"news","data":` + strconv.Itoa(seq) + `}`
		if err := emitter.Publish(context.Background(), protocol.ChannelBroadcast, []byte(payload)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range cs {
		for seq := 0; seq < msgs; seq++ {
			m := expectEvent(t, c, protocol.EventEncrypted)
			var d struct{ Seq int }
			if err := json.Unmarshal(m.Data, &d); err != nil || d.Seq != seq {
				t.Fatalf("message %d arrived as %s", seq, m.Data)
			}
		}
	}
	// The slow client's 20 calls take 6 s; the others were not held up
	// behind them.
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the other clients got their %d messages after %v: they waited for the slow client's calls", msgs, d)
	}
	p := calls.highest()
	if p > limit {
		t.Fatalf("peak concurrent transformations %d, over the limit %d", p, limit)
	}
	_ = slow
}

// A client whose transformer calls do not come back has at most 1024 of
// the broker's messages waiting for it; the rest are dropped and counted,
// rather than kept without bound.
func TestBrokerMessagesWaitingForATransformerAreBounded(t *testing.T) {
	release := make(chan struct{})
	hub := broker.NewMemoryHub()
	k := newKit(t, rawSocket, func(c *helper.Config) {
		c.Broker = hub.NewBroker()
		requireEncryption(c, 0)
		c.Handlers.OutboundTransformer = func(ctx context.Context, req helper.OutboundRequest) (*protocol.Message, error) {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil, nil
		}
	})
	k.login("stuck")
	emitter := hub.NewBroker()
	if err := emitter.Start(context.Background(), func(string, []byte) {}); err != nil {
		t.Fatal(err)
	}
	defer emitter.Close()
	const sent = 1100
	for seq := 0; seq < sent; seq++ {
		payload := `{"serverId":"emitter","type":"broadcast","event":"news","data":` + strconv.Itoa(seq) + `}`
		if err := emitter.Publish(context.Background(), protocol.ChannelBroadcast, []byte(payload)); err != nil {
			t.Fatal(err)
		}
	}
	// One in the call, 1024 waiting, the rest dropped.
	eventually(t, "the overflow dropped", func() bool { return k.h.Stats().DroppedBackpressure == sent-1-1024 })
	close(release)
}

// requireEncryption makes every client of c encrypted, with a handshake
// that accepts anyone, and limit transformer calls at once (0: the
// default).
func requireEncryption(c *helper.Config, limit int) {
	c.Options.RequireEncryption = true
	c.Options.EncryptedBatchLimit = limit
	c.Handlers.Handshake = func(context.Context, helper.HandshakeRequest) (*helper.HandshakeResult, error) {
		return &helper.HandshakeResult{ServerPublicKey: "k", Salt: "s"}, nil
	}
}

// concurrency counts the calls running at once and the most there were.
type concurrency struct {
	mu       sync.Mutex
	in, peak int
}

func (c *concurrency) enter() {
	c.mu.Lock()
	c.in++
	c.peak = max(c.peak, c.in)
	c.mu.Unlock()
}

func (c *concurrency) leave() {
	c.mu.Lock()
	c.in--
	c.mu.Unlock()
}

func (c *concurrency) highest() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peak
}

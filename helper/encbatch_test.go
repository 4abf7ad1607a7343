package helper_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/protocol"
)

// Encrypted recipients go through the outbound transformer in parallel, at
// most EncryptedBatchLimit at a time, and Broadcast returns only once each
// has its frame (so one client's messages keep their order).
func TestEncryptedFanOutIsBounded(t *testing.T) {
	const limit, clients = 3, 9
	var mu sync.Mutex
	inFlight, peak := 0, 0
	k := newKit(t, rawSocket, func(c *helper.Config) {
		c.Options.RequireEncryption = true
		c.Options.EncryptedBatchLimit = limit
		c.Handlers.Handshake = func(context.Context, helper.HandshakeRequest) (*helper.HandshakeResult, error) {
			return &helper.HandshakeResult{ServerPublicKey: "k", Salt: "s"}, nil
		}
		c.Handlers.OutboundTransformer = func(ctx context.Context, req helper.OutboundRequest) (*protocol.Message, error) {
			mu.Lock()
			inFlight++
			peak = max(peak, inFlight)
			mu.Unlock()
			time.Sleep(20 * time.Millisecond) // long enough for the workers to overlap
			mu.Lock()
			inFlight--
			mu.Unlock()
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
	mu.Lock()
	p := peak
	mu.Unlock()
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

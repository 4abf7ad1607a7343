package websocket_test

import (
	"context"
	"testing"
	"time"

	websocket "github.com/fxws/websocket"
	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/protocol"
)

// A slow outbound transformer call for one client holds up no other
// client's messages from other instances: the broker's worker (one, by
// default) hands them to the transformer queue and goes on (found in
// review: it used to wait for every call).
func TestSlowTransformerHoldsUpNoOtherClient(t *testing.T) {
	r := fxtest.StartRedis(t)
	const slow = 2 * time.Second
	srvs := fxtest.StartCluster(t, 2, r.Addr(),
		websocket.WithAuthenticate(auth),
		websocket.WithServerOptions(websocket.ServerOptions{Options: helper.Options{RequireEncryption: true}}),
		websocket.WithHandshake(func(context.Context, helper.HandshakeRequest) (*helper.HandshakeResult, error) {
			return &helper.HandshakeResult{ServerPublicKey: "k", Salt: "s"}, nil
		}),
		websocket.WithOutboundTransformer(func(_ context.Context, req helper.OutboundRequest) (*protocol.Message, error) {
			if req.Event == "slow" {
				time.Sleep(slow) // e.g. a KMS round trip for one client's key
			}
			return nil, nil
		}))
	_, eID := srvs[1].Connect(t, token("e"))
	p, pID := srvs[1].Connect(t, token("p"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if !srvs[1].Helper().JoinRoom(eID, "r") {
		t.Fatal("join")
	}
	if err := srvs[1].Helper().SyncSubscriptions(ctx); err != nil {
		t.Fatal(err)
	}
	if err := srvs[0].Helper().Send(ctx, "r", "slow", 1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the slow call has begun on instance 1
	start := time.Now()
	if err := srvs[0].Helper().Send(ctx, pID, "fast", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Expect(ctx, "fast"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > slow/2 {
		t.Fatalf("a message to client %s on another channel took %v: it waited for another client's transformer call", pID, d.Round(time.Millisecond))
	}
}

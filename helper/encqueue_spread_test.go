package helper_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/protocol"
)

// While Shutdown spreads its closes (Options.ShutdownSpread), an
// encrypted client not closed yet still gets what other instances send
// it: its messages from the broker are transformed as before, not queued
// for good behind a worker that Shutdown refused to start.
func TestEncryptedBrokerMessagesDuringShutdownSpread(t *testing.T) {
	hub := broker.NewMemoryHub()
	k := newKit(t, rawSocket, func(c *helper.Config) {
		c.Broker = hub.NewBroker()
		c.Options.ShutdownSpread = 3 * time.Second
		requireEncryption(c, 0)
		c.Handlers.OutboundTransformer = func(ctx context.Context, req helper.OutboundRequest) (*protocol.Message, error) {
			b, _ := json.Marshal(map[string]any{"event": req.Event})
			return &protocol.Message{Event: protocol.EventEncrypted, Data: b}, nil
		}
	})
	first, _ := k.login("first")
	last, _ := k.login("last") // the newest: closed last, 2 s into the spread
	emitter := hub.NewBroker()
	if err := emitter.Start(context.Background(), func(string, []byte) {}); err != nil {
		t.Fatal(err)
	}
	defer emitter.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- k.h.Shutdown(ctx) }()
	expectClose(t, first, 1001, "")
	payload := `{"serverId":"emitter","type":"user","target":"last","event":"news","data":1}`
	if err := emitter.Publish(context.Background(), protocol.UserChannel("last"), []byte(payload)); err != nil {
		t.Fatal(err)
	}
	m, err := last.ExpectAny(ctx, protocol.EventEncrypted)
	if err != nil {
		t.Fatalf("the client still open during the spread got nothing: %v", err)
	}
	if string(m.Data) != `{"event":"news"}` {
		t.Fatalf("got %s", m.Data)
	}
	expectClose(t, last, 1001, "")
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}

package helper_test

import (
	"context"
	"math/rand"
	"testing"

	websocket "github.com/fxws/websocket"
	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
)

// A client that has just connected (a page load, a reconnect after a
// rolling deploy) and pastes three 100 KB chunks, each after the server has
// answered the one before, is not closed for it. From a collaborative-
// editing trial: with a new connection's inflate budget at one
// MaxPayloadLength, the third paste closed it 1008 "Rate limit exceeded"
// (and Chromium's did), where the same messages uncompressed passed.
func TestFreshCompressedClientCanPasteAFewLargeChunks(t *testing.T) {
	var h *helper.WebSocketServerHelper // set once started; handlers run after
	srv := fxtest.StartServer(t,
		websocket.WithServerOptions(websocket.ServerOptions{Options: helper.Options{PerMessageDeflate: true}}),
		websocket.WithAuthenticate(func(context.Context, helper.AuthenticateRequest) (*helper.AuthResult, error) {
			return &helper.AuthResult{UserID: "u"}, nil
		}),
		websocket.WithMessageHandler(func(_ context.Context, req helper.MessageRequest) error {
			_, err := h.SendToClient(req.ClientID, "ack", struct{}{})
			return err
		}),
	)
	h = srv.Helper()
	c, err := fxtest.DialCompressed(context.Background(), srv.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Authenticate(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(1))
	for i := range 3 { // 300 KB in all, within the 512 KiB a connection starts with
		b := make([]byte, 100_000)
		for j := range b {
			b[j] = byte('a' + rng.Intn(26))
		}
		if err := c.Emit("paste", string(b)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Expect(context.Background(), "ack"); err != nil {
			t.Fatalf("message %d of 100 KB (%d KB since connecting): %v", i+1, (i+1)*100, err)
		}
	}
}

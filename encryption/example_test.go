package encryption_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/fxws/websocket/encryption"
	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
)

// A server that requires the Ignis ECDH scheme, and a Go client of it.
func Example() {
	enc := encryption.NewECDH(encryption.Options{})
	var h *helper.WebSocketServerHelper
	h, _ = helper.New(helper.Config{
		Options: helper.Options{RequireEncryption: true},
		Handlers: enc.Handlers(helper.Handlers{
			Authenticate: func(context.Context, helper.AuthenticateRequest) (*helper.AuthResult, error) {
				return &helper.AuthResult{UserID: "alice"}, nil
			},
			// Receives the decrypted message.
			Message: func(ctx context.Context, req helper.MessageRequest) error {
				fmt.Printf("server got %s %s\n", req.Message.Event, req.Message.Data)
				return h.Send(ctx, req.ClientID, "echo", req.Message.Data)
			},
		}),
	})
	ctx := context.Background()
	_ = h.Start(ctx)
	srv := httptest.NewServer(h)
	defer srv.Close()
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = h.Shutdown(sctx)
	}()

	c, _ := fxtest.DialEncrypted(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws")
	defer c.Close()
	_, _ = c.Authenticate(ctx, map[string]string{"token": "t"}) // adds publicKey, derives the key
	fmt.Println("keys held:", enc.Len())
	_ = c.EmitEncrypted("echo", "hello")
	m, _ := c.ExpectDecrypted(ctx, "echo")
	fmt.Printf("client got %s %s\n", m.Event, m.Data)
	// Output:
	// keys held: 1
	// server got echo "hello"
	// client got echo "hello"
}

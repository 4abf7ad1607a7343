package websocket_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	websocket "github.com/fxws/websocket"
	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
)

// A server that requires the Ignis ECDH scheme, and a client that speaks
// it: `connected` carries the server's public key and salt in clear, every
// later message is sealed.
func ExampleWithECDHEncryption() {
	authenticate := func(_ context.Context, req helper.AuthenticateRequest) (*helper.AuthResult, error) {
		var d struct{ Token string }
		if json.Unmarshal(req.Data, &d) != nil || d.Token == "" {
			return nil, nil
		}
		return &helper.AuthResult{UserID: d.Token}, nil
	}
	srv, err := fxtest.Start( // websocket.Module on 127.0.0.1:<ephemeral>
		websocket.WithAuthenticate(authenticate),
		websocket.WithECDHEncryption(),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := fxtest.DialEncrypted(ctx, srv.URL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Abort()
	cd, err := c.Authenticate(ctx, map[string]string{"token": "alice"}) // adds publicKey
	if err != nil {
		fmt.Println(err)
		return
	}
	_, _ = srv.Helper().SendToClient(cd.ID, "secret", "hello")
	raw, _ := c.Expect(ctx, "encrypted") // on the wire: {"event":"encrypted","data":{"iv","ct"}}
	m, err := c.Decrypt(raw)
	fmt.Println(m.Event, string(m.Data), err)
	// Output: secret "hello" <nil>
}

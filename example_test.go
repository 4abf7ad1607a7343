package websocket_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"time"

	websocket "github.com/fxws/websocket"
	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/protocol"
	"go.uber.org/fx"
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

// An app with the module on a listener of its own: a client authenticates,
// and the application closes it with a code and reason of its own.
func ExampleModule() {
	authenticate := func(_ context.Context, req helper.AuthenticateRequest) (*helper.AuthResult, error) {
		var d struct{ Token string }
		if json.Unmarshal(req.Data, &d) != nil || d.Token == "" {
			return nil, nil // refused: the client is closed 4003
		}
		return &helper.AuthResult{UserID: d.Token}, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	var ws *helper.WebSocketServerHelper
	app := fx.New(
		websocket.Module,
		websocket.WithAuthenticate(authenticate),
		websocket.WithListener(ln),
		fx.Populate(&ws),
		fx.NopLogger,
	)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer app.Stop(ctx)

	c, err := fxtest.Dial(ctx, "ws://"+ln.Addr().String()+ws.Path())
	if err != nil {
		fmt.Println(err)
		return
	}
	cd, err := c.Authenticate(ctx, map[string]string{"token": "mallory"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("connected as", cd.UserID)
	_, _ = ws.Disconnect(cd.ID, 4100, "Banned")
	code, reason, _ := c.ExpectClose(ctx)
	fmt.Println("closed", code, reason)
	// Output:
	// connected as mallory
	// closed 4100 Banned
}

// A price feed whose clients hold the latest price of each symbol: when the
// Redis broker has subscribed again after losing its subscription (a Redis
// restart), the prices published meanwhile never reached this instance's
// clients, so it sends the current ones again. As protocol.Latest values,
// a price still queued for a client is replaced, not sent twice.
func ExampleWithBrokerRestored() {
	prices := map[string]float64{"ACME": 12.5, "INITECH": 3.25} // the feed's current state
	var ref *websocket.HelperRef
	resend := func(ctx context.Context, info helper.BrokerRestoredInfo) error {
		h := ref.Helper()
		for symbol, price := range prices {
			// Local to this instance: every instance's handler does its own.
			if _, err := h.SendToRoom("price:"+symbol, "price", protocol.Latest{Key: symbol, Data: price}); err != nil {
				return err
			}
		}
		return nil
	}
	app := fx.New(
		websocket.Module,
		fx.Populate(&ref),
		websocket.WithAuthenticate(func(context.Context, helper.AuthenticateRequest) (*helper.AuthResult, error) {
			return &helper.AuthResult{UserID: "viewer"}, nil
		}),
		websocket.WithBrokerRestored(resend),
		fx.NopLogger,
	)
	fmt.Println(app.Err())
	// Output: <nil>
}

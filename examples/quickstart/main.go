// Command quickstart is the README's example: an fx app with authentication
// and rooms, and a service that gets the server injected and sends from it.
package main

import (
	"context"
	"encoding/json"
	"os"
	"time"

	websocket "github.com/fxws/websocket"
	"github.com/fxws/websocket/helper"
	"go.uber.org/fx"
)

// Clock is an ordinary service: fx injects the WebSocket server into it.
type Clock struct{ ws *helper.WebSocketServerHelper }

func NewClock(ws *helper.WebSocketServerHelper) *Clock { return &Clock{ws: ws} }

// Run sends the time to room "clock" (on every instance) each second until ctx ends.
func (c *Clock) Run(ctx context.Context) {
	for tick := time.Tick(time.Second); ctx.Err() == nil; <-tick {
		_ = c.ws.Send(ctx, "clock", "tick", time.Now())
	}
}

func authenticate(_ context.Context, req helper.AuthenticateRequest) (*helper.AuthResult, error) {
	var d struct{ Token string }
	if json.Unmarshal(req.Data, &d) != nil || d.Token == "" {
		return nil, nil // rejected: close 4003
	}
	return &helper.AuthResult{UserID: d.Token}, nil // a real app verifies the token
}

func main() {
	fx.New(
		websocket.Module,
		websocket.WithServerOptions(websocket.ServerOptions{Addr: os.Getenv("ADDR")}), // "" is :3000
		websocket.WithAuthenticate(authenticate),
		websocket.WithValidateRoom(func(_ context.Context, req helper.ValidateRoomRequest) ([]string, error) {
			return req.Rooms, nil // every room may be joined
		}),
		fx.Provide(NewClock),
		fx.Invoke(func(lc fx.Lifecycle, c *Clock) {
			ctx, stop := context.WithCancel(context.Background())
			lc.Append(fx.StartStopHook(func() { go c.Run(ctx) }, stop))
		}),
	).Run()
}

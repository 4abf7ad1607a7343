package helper_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
)

// The server without fx: a helper on an http.Server of one's own. Start
// before serving, Shutdown (which closes every client with 1001) before
// the HTTP server.
func ExampleNew() {
	h, err := helper.New(helper.Config{
		Handlers: helper.Handlers{
			Authenticate: func(_ context.Context, req helper.AuthenticateRequest) (*helper.AuthResult, error) {
				var d struct{ Token string }
				if json.Unmarshal(req.Data, &d) != nil || d.Token == "" {
					return nil, nil // refused: closed 4003
				}
				return &helper.AuthResult{UserID: d.Token}, nil
			},
		},
		// No Broker: the in-process one, a single instance.
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	mux := http.NewServeMux()
	mux.Handle(h.Path(), h) // "/ws" by default
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	defer srv.Shutdown(ctx)
	defer h.Shutdown(ctx)

	c, err := fxtest.Dial(ctx, "ws://"+ln.Addr().String()+h.Path())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Abort()
	if _, err := c.Authenticate(ctx, map[string]string{"token": "alice"}); err != nil {
		fmt.Println(err)
		return
	}
	n, _ := h.Broadcast("news", "hello")
	m, _ := c.Expect(ctx, "news")
	fmt.Println(n, m.Event, string(m.Data))
	// Output: 1 news "hello"
}

package fxtest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	websocket "github.com/fxws/websocket"
	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
	"go.uber.org/fx"
)

// authenticate accepts {"token": <user id>}.
func authenticate(_ context.Context, req helper.AuthenticateRequest) (*helper.AuthResult, error) {
	var d struct{ Token string }
	if json.Unmarshal(req.Data, &d) != nil || d.Token == "" {
		return nil, nil
	}
	return &helper.AuthResult{UserID: d.Token}, nil
}

// Start an app with websocket.Module on an ephemeral port, authenticate a
// client, send to it from the server and see it arrive. In a test,
// StartServer(t, …) and Server.Connect(t, …) do the same with less code.
func ExampleStart() {
	srv, err := fxtest.Start(websocket.WithAuthenticate(authenticate))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Stop()

	ctx := context.Background()
	c, err := fxtest.Dial(ctx, srv.URL())
	if err != nil {
		fmt.Println(err)
		return
	}
	cd, err := c.Authenticate(ctx, map[string]string{"token": "alice"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("connected as", cd.UserID)

	_ = srv.Helper().Send(ctx, cd.ID, "hello", map[string]string{"to": "alice"})
	m, _ := c.Expect(ctx, "hello")
	fmt.Println(m.Event, string(m.Data))
	// Output:
	// connected as alice
	// hello {"to":"alice"}
}

// The client sees the protocol's errors and close codes.
func ExampleServer_Dial() {
	srv, _ := fxtest.Start(websocket.WithAuthenticate(authenticate))
	defer srv.Stop()
	ctx := context.Background()
	c, _ := fxtest.Dial(ctx, srv.URL())

	_ = c.Emit("authenticate", map[string]string{"token": ""})
	text, _ := c.ExpectError(ctx)
	code, reason, _ := c.ExpectClose(ctx)
	fmt.Println(text, "/", code, reason)
	// Output: Authentication failed / 4003 Authentication failed
}

// Two instances on one in-process hub, as two servers on one Redis: sends
// on the first reach a client connected to the second, by client id and by
// user id.
func ExampleWithHub() {
	hub := fxtest.NewHub()
	a, _ := fxtest.Start(websocket.WithAuthenticate(authenticate), fxtest.WithHub(hub))
	defer a.Stop()
	b, _ := fxtest.Start(websocket.WithAuthenticate(authenticate), fxtest.WithHub(hub))
	defer b.Stop()

	ctx := context.Background()
	c, _ := fxtest.Dial(ctx, b.URL())
	cd, _ := c.Authenticate(ctx, map[string]string{"token": "bob"})

	_ = a.Helper().Send(ctx, cd.ID, "direct", "by client id")
	_ = a.Helper().SendToUser(ctx, "bob", "mine", "by user id")
	for _, event := range []string{"direct", "mine"} {
		m, _ := c.Expect(ctx, event)
		fmt.Println(event, string(m.Data))
	}
	// Output:
	// direct "by client id"
	// mine "by user id"
}

// Any fx option goes into the app: here a service that takes the helper.
func ExampleStartServer() {
	type greeter struct{ ws *helper.WebSocketServerHelper }
	var g *greeter
	srv, _ := fxtest.Start(
		websocket.WithAuthenticate(authenticate),
		fx.Provide(func(ws *helper.WebSocketServerHelper) *greeter { return &greeter{ws: ws} }),
		fx.Populate(&g),
	)
	defer srv.Stop()
	fmt.Println(g.ws == srv.Helper())
	// Output: true
}

// A client that offers permessage-deflate, as browsers do, against an app
// that accepts it (PerMessageDeflate) and sends large messages compressed
// (CompressMinSize). The client compresses what it sends and inflates
// what it gets; the test sees plain messages either way.
func ExampleDialCompressed() {
	opts := websocket.ServerOptions{Options: helper.Options{PerMessageDeflate: true, CompressMinSize: 512}}
	srv, err := fxtest.Start(websocket.WithAuthenticate(authenticate), websocket.WithServerOptions(opts))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Stop()

	ctx := context.Background()
	c, _ := fxtest.DialCompressed(ctx, srv.URL(), nil)
	cd, _ := c.Authenticate(ctx, map[string]string{"token": "alice"})
	fmt.Println("compressed:", c.Compressed())

	report := strings.Repeat("all systems nominal; ", 100)
	_ = srv.Helper().Send(ctx, cd.ID, "report", report)
	m, _ := c.Expect(ctx, "report")
	fmt.Println(len(m.Data) == len(report)+2)
	// Output:
	// compressed: true
	// true
}

// An invite and a kick on every instance: AddUserToRooms puts each of the
// user's connections in the room, and the room's state sent to the user
// after it comes after the join; RemoveUserFromRooms takes them out.
func ExampleServer_Helper_addUserToRooms() {
	srv, err := fxtest.Start(websocket.WithAuthenticate(authenticate))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Stop()
	ctx := context.Background()
	var devices []*fxtest.Client
	for range 2 { // a phone and a laptop
		c, err := fxtest.Dial(ctx, srv.URL())
		if err != nil {
			fmt.Println(err)
			return
		}
		defer c.Abort()
		_, _ = c.Authenticate(ctx, map[string]string{"token": "alice"})
		devices = append(devices, c)
	}

	ws := srv.Helper()
	_ = ws.AddUserToRooms(ctx, "alice", "design-review")
	_ = ws.SendToUser(ctx, "alice", "history", []string{"bob: first draft"})
	_, _ = ws.SendToRoom("design-review", "said", "carol: looks good")
	for _, c := range devices {
		h, _ := c.Expect(ctx, "history")
		m, _ := c.Expect(ctx, "said")
		fmt.Println(string(h.Data), string(m.Data))
	}

	_ = ws.RemoveUserFromRooms(ctx, "alice", "design-review")
	n, _ := ws.SendToRoom("design-review", "said", "carol: where did alice go?")
	fmt.Println("members left:", n)
	// Output:
	// ["bob: first draft"] "carol: looks good"
	// ["bob: first draft"] "carol: looks good"
	// members left: 0
}

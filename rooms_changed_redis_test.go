package websocket_test

import (
	"context"
	"slices"
	"testing"
	"time"

	websocket "github.com/fxws/websocket"
	"github.com/fxws/websocket/emitter"
	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
	"go.uber.org/fx"
)

// The rooms-changed handler runs once a join's rooms are subscribed on
// Redis: a room's state read there and a message sent to the room from
// another instance right after it miss nothing between them (found in an
// encrypted-chat trial: 17 of 20 such messages were lost, the handler
// running while the subscription was still being made). Encrypted, as in
// the trial, and plain.
func TestRoomsChangedRoomAlreadyHearsOtherInstances(t *testing.T) {
	r := fxtest.StartRedis(t)
	for _, encrypted := range []bool{false, true} {
		joined := make(chan string, 100)
		t.Run(map[bool]string{false: "plain", true: "encrypted"}[encrypted], func(t *testing.T) {
			fxOpts := roomsChangedApp(joined)
			if encrypted {
				fxOpts = append(fxOpts, websocket.WithECDHEncryption())
			}
			servers := fxtest.StartCluster(t, 2, r.Addr(), fxOpts...)
			a, b := servers[0], servers[1]
			ctx := context.Background()
			missed := 0
			const rounds = 20
			for i := range rounds {
				room := "fresh-" + string(rune('a'+i)) // new to both instances
				var expect func(context.Context) error
				var closeClient func()
				if encrypted {
					c, err := fxtest.DialEncrypted(ctx, b.URL())
					if err != nil {
						t.Fatal(err)
					}
					if _, err := c.Authenticate(ctx, nil); err != nil {
						t.Fatal(err)
					}
					_ = c.EmitEncrypted("join", map[string]any{"rooms": []string{room}})
					expect = func(ctx context.Context) error { _, err := c.ExpectDecrypted(ctx, "msg"); return err }
					closeClient = func() { _ = c.Close() }
				} else {
					c, _ := b.Connect(t, nil)
					_ = c.Join(room)
					expect = func(ctx context.Context) error { _, err := c.Expect(ctx, "msg"); return err }
					closeClient = func() { _ = c.Close() }
				}
				<-joined
				if err := a.Helper().Send(ctx, room, "msg", i); err != nil { // right after the history was read
					t.Fatal(err)
				}
				cctx, cancel := context.WithTimeout(ctx, time.Second)
				if expect(cctx) != nil {
					missed++
				}
				cancel()
				closeClient()
			}
			if missed > 0 {
				t.Errorf("%d of %d messages sent from the other instance right after rooms-changed never reached the newcomer", missed, rounds)
			}
		})
	}
}

// roomsChangedApp is an app whose rooms-changed handler reports each room
// joined on joined.
func roomsChangedApp(joined chan<- string) []fx.Option {
	return []fx.Option{
		websocket.WithServerOptions(websocket.ServerOptions{Options: helper.Options{DefaultRooms: []string{}}}),
		websocket.WithAuthenticate(func(context.Context, helper.AuthenticateRequest) (*helper.AuthResult, error) {
			return &helper.AuthResult{UserID: "u"}, nil
		}),
		websocket.WithValidateRoom(func(_ context.Context, req helper.ValidateRoomRequest) ([]string, error) { return req.Rooms, nil }),
		websocket.WithRoomsChanged(func(_ context.Context, req helper.RoomsChangedRequest) error {
			for _, room := range req.Joined {
				joined <- room // the app reads the room's history here
			}
			return nil
		}),
	}
}

// With RoomsChangedByServer, on a real Redis: a worker's (an emitter's)
// AddUserToRooms and RemoveUserFromRooms, and another instance's, reach
// the rooms-changed handler of the instance holding the user's connection,
// once each (an order travels twice), with ByServer; the instance without
// a connection of the user tells nothing. The handler, bound through fx
// with a HelperRef, sends the newcomer the match's state, and a message
// sent to the match from the other instance right after reaches it: the
// room was subscribed before the call (a game moving players into a match
// from a worker).
func TestRoomsChangedByServerFromEmitterAndOtherInstanceOnRedis(t *testing.T) {
	r := fxtest.StartRedis(t)
	type told struct {
		instance string
		req      helper.RoomsChangedRequest
	}
	calls := make(chan told, 100)
	app := func(instance string) []fx.Option {
		return []fx.Option{
			fxtest.WithRedis(r.Addr()),
			websocket.WithServerOptions(websocket.ServerOptions{Options: helper.Options{DefaultRooms: []string{}, RoomsChangedByServer: true}}),
			websocket.WithAuthenticate(auth),
			websocket.WithValidateRoom(func(_ context.Context, req helper.ValidateRoomRequest) ([]string, error) { return req.Rooms, nil }),
			fx.Provide(fx.Annotate(func(ref *websocket.HelperRef) helper.RoomsChangedFunc {
				return func(_ context.Context, req helper.RoomsChangedRequest) error {
					for _, room := range req.Joined {
						if _, err := ref.Helper().SendToClient(req.ClientID, "state", room); err != nil {
							return err
						}
					}
					calls <- told{instance, req}
					return nil
				}
			}, fx.ResultTags(websocket.RoomsChangedHandlerKey))),
		}
	}
	a := fxtest.StartServer(t, app("a")...)
	b := fxtest.StartServer(t, app("b")...)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e, err := emitter.New(r.Client(), emitter.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = e.Stop(context.Background()) }()
	c, id := b.Connect(t, token("dave"))

	next := func(what string, byServer bool, joined, left []string) {
		t.Helper()
		select {
		case got := <-calls:
			if got.instance != "b" || got.req.ClientID != id || got.req.UserID != "dave" || got.req.ByServer != byServer ||
				!slices.Equal(got.req.Joined, joined) || !slices.Equal(got.req.Left, left) {
				t.Fatalf("%s: told %+v on %s; want joined %v, left %v, ByServer %v, on b", what, got.req, got.instance, joined, left, byServer)
			}
		case <-ctx.Done():
			t.Fatalf("%s: not told", what)
		}
	}
	expect := func(event string) {
		t.Helper()
		if _, err := c.Expect(ctx, event); err != nil {
			t.Fatalf("%s: %v", event, err)
		}
	}

	if err := e.AddUserToRooms(ctx, "dave", "match-1"); err != nil {
		t.Fatal(err)
	}
	next("the emitter's AddUserToRooms", true, []string{"match-1"}, nil)
	expect("state")
	if err := a.Helper().Send(ctx, "match-1", "tick", 1); err != nil {
		t.Fatal(err)
	}
	expect("tick")
	if err := e.RemoveUserFromRooms(ctx, "dave", "match-1", "never-in"); err != nil {
		t.Fatal(err)
	}
	next("the emitter's RemoveUserFromRooms", true, nil, []string{"match-1"})
	if err := a.Helper().AddUserToRooms(ctx, "dave", "lobby"); err != nil {
		t.Fatal(err)
	}
	next("the other instance's AddUserToRooms", true, []string{"lobby"}, nil)
	expect("state")
	if err := a.Helper().RemoveUserFromRooms(ctx, "dave", "lobby"); err != nil {
		t.Fatal(err)
	}
	next("the other instance's RemoveUserFromRooms", true, nil, []string{"lobby"})
	// The second copies of the four orders have come by now; they changed
	// nothing and are told nothing: the client's own join is what comes
	// next.
	time.Sleep(300 * time.Millisecond)
	if err := c.Join("own"); err != nil {
		t.Fatal(err)
	}
	next("the client's own join", false, []string{"own"}, nil)
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-calls:
		t.Fatalf("told %+v on %s more", got.req, got.instance)
	default:
	}
}

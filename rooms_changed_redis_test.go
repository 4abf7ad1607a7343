package websocket_test

import (
	"context"
	"testing"
	"time"

	websocket "github.com/fxws/websocket"
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

package emitter_test

import (
	"context"
	"testing"
	"time"

	"github.com/fxws/websocket/broker/redisbroker"
	"github.com/fxws/websocket/emitter"
	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/internal/redisinstance"
	"github.com/fxws/websocket/internal/redistest"
)

// An invite and a kick (AddUserToRooms, RemoveUserFromRooms) made while
// the user's only connection on an instance is still authenticating, in
// audience mode: the docs say that such a connection "joins the rooms once
// it completes", and that "rooms its authentication was giving it do not
// undo" a removal. But join-user and leave-user travel on the user's
// channel, which that instance subscribes only once the authentication
// has bound the connection to the user, so it never hears them: the
// connection ends up in the room it was kicked from and not in the one it
// was invited to (found reading the code during a soak; disconnect-user, which had the same
// hole, was moved to the broadcast channel for it). Both from a worker
// (the emitter) and from another instance.
func TestUserRoomsReachAConnectionStillAuthenticating(t *testing.T) {
	for _, from := range []string{"emitter", "instance"} {
		t.Run(from, func(t *testing.T) {
			srv := redistest.Start(t)
			inAuth := make(chan struct{}, 1)
			release := make(chan struct{})
			a := redisinstance.Start(t, srv.Client(), redisbroker.Options{Mode: redisbroker.ModeAudience})
			b := redisinstance.Start(t, srv.Client(), redisbroker.Options{Mode: redisbroker.ModeAudience}, func(c *helper.Config) {
				auth := c.Handlers.Authenticate
				c.Handlers.Authenticate = func(ctx context.Context, req helper.AuthenticateRequest) (*helper.AuthResult, error) {
					res, err := auth(ctx, req)
					if res != nil && res.UserID == "alice" {
						res.Rooms = []string{"general"} // what the login gives her
						inAuth <- struct{}{}
						<-release // the token check is slow
					}
					return res, err
				}
			})
			e, err := emitter.New(srv.Client(), emitter.Options{})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := fxtest.Dial(ctx, b.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Abort()
			type result struct {
				id  string
				err error
			}
			done := make(chan result, 1)
			go func() {
				cd, err := c.Authenticate(ctx, map[string]string{"token": "valid-alice"})
				done <- result{cd.ID, err}
			}()
			<-inAuth
			if from == "emitter" {
				if err := e.RemoveUserFromRooms(ctx, "alice", "general"); err != nil { // kicked…
					t.Fatal(err)
				}
				if err := e.AddUserToRooms(ctx, "alice", "invited"); err != nil { // …and invited elsewhere
					t.Fatal(err)
				}
			} else {
				if err := a.Helper.RemoveUserFromRooms(ctx, "alice", "general"); err != nil {
					t.Fatal(err)
				}
				if err := a.Helper.AddUserToRooms(ctx, "alice", "invited"); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(100 * time.Millisecond) // the envelopes are through Redis
			close(release)
			r := <-done
			if r.err != nil {
				t.Fatal(r.err)
			}
			time.Sleep(100 * time.Millisecond)
			if b.Helper.InRoom(r.id, "general") {
				t.Error("removed from general while authenticating, the connection is in it once authenticated")
			}
			if !b.Helper.InRoom(r.id, "invited") {
				t.Error("added to invited while authenticating, the connection is not in it once authenticated")
			}
		})
	}
}

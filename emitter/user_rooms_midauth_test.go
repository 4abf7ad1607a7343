package emitter_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	websocket "github.com/fxws/websocket"
	"github.com/fxws/websocket/emitter"
	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/internal/redistest"
)

// A worker follows a user to a topic (its store first, then
// e.AddUserToRooms) while one of the user's devices is authenticating on an
// instance that holds no other connection of the user: the authenticator
// read the store just before the change, and the join-user envelope, sent on
// ws:user:<id>, reaches no one there, as the instance subscribes that channel
// only once the connection is bound. The device then misses the topic for its
// whole session, although the helper documents "A connection whose
// authentication as userID is under way joins the rooms once it completes",
// and the emitter's AddUserToRooms "puts every connection of a user, on
// every instance of this library, in rooms". Found in a notification trial
// (sharded mode, a reconnect storm: one device of a user never got its
// project's notifications while its sibling on the same instance did).
func TestAddUserToRoomsFromEmitterReachesADeviceMidAuthentication(t *testing.T) {
	srv := redistest.Start(t)
	inAuth := make(chan struct{}, 1)
	release := make(chan struct{})
	auth := func(_ context.Context, req helper.AuthenticateRequest) (*helper.AuthResult, error) {
		var d struct{ Token string }
		_ = json.Unmarshal(req.Data, &d)
		// (the app reads the user's follows here: none yet)
		inAuth <- struct{}{}
		<-release
		return &helper.AuthResult{UserID: d.Token}, nil
	}
	s := fxtest.StartServer(t, fxtest.WithRedis(srv.Addr()), websocket.WithAuthenticate(auth))
	e, err := emitter.New(srv.Client(), emitter.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := fxtest.Dial(ctx, s.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Abort()
	done := make(chan error, 1)
	go func() {
		_, err := c.Authenticate(ctx, map[string]string{"token": "dave"})
		done <- err
	}()
	<-inAuth
	if err := e.AddUserToRooms(ctx, "dave", "project-7"); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := s.Helper().SyncSubscriptions(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.ToRoom(ctx, "project-7", "note", 1); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
	defer wcancel()
	if _, err := c.Expect(wctx, "note"); err != nil {
		t.Fatalf("the device that was authenticating during AddUserToRooms never joined the room: %v", err)
	}
}

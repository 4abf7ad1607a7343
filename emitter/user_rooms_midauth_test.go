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

// Each join-user and leave-user order travels twice (broadcast channel,
// then the user's channel), and a server applies the copy that comes
// first: orders sent in a row about one room end on the last one, on a
// real Redis. (Applying both copies would let a late broadcast copy of an
// invite undo the kick after it for a while; helper's
// TestLateBroadcastCopyOfAnOrderDoesNotUndoALaterOne holds the broadcast
// copies back to show it.)
func TestUserRoomOrdersInARowEndOnTheLast(t *testing.T) {
	srv := redistest.Start(t)
	s := fxtest.StartServer(t, fxtest.WithRedis(srv.Addr()), websocket.WithAuthenticate(
		func(_ context.Context, req helper.AuthenticateRequest) (*helper.AuthResult, error) {
			return &helper.AuthResult{UserID: "dave"}, nil
		}))
	e, err := emitter.New(srv.Client(), emitter.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	_, id := s.Connect(t, map[string]string{})
	for round := range 50 {
		for i := range 5 { // add, remove, add, remove, add
			var err error
			if i%2 == 0 {
				err = e.AddUserToRooms(ctx, "dave", "topic")
			} else {
				err = e.RemoveUserFromRooms(ctx, "dave", "topic")
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		last := round%2 == 0 // this round ends with one more order
		if !last {
			if err := e.RemoveUserFromRooms(ctx, "dave", "topic"); err != nil {
				t.Fatal(err)
			}
		}
		deadline := time.Now().Add(5 * time.Second)
		for s.Helper().InRoom(id, "topic") != last {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: in the room %v after the last order said %v", round, !last, last)
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond) // a late copy would land now
		if in := s.Helper().InRoom(id, "topic"); in != last {
			t.Fatalf("round %d: a late copy of an earlier order changed the room to %v after the last order", round, in)
		}
	}
}

package helper_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/protocol"
)

// "Log out everywhere" made while one of the user's connections is in its
// authenticate callback (its token checked just before the revocation)
// closes that one too, once it is bound to the user, before `connected`;
// an authentication that begins after the close is the user logging in
// again, and is left alone (found in a chat trial: the connection stayed
// open for good).
func TestDisconnectUserReachesAConnectionMidAuthentication(t *testing.T) {
	inAuth := make(chan struct{}, 1)
	release := make(chan struct{})
	k := newKit(t, rawSocket, func(c *helper.Config) {
		auth := c.Handlers.Authenticate
		c.Handlers.Authenticate = func(ctx context.Context, req helper.AuthenticateRequest) (*helper.AuthResult, error) {
			if strings.Contains(string(req.Data), `"slow":true`) {
				inAuth <- struct{}{} // the token is valid (checked now)…
				<-release            // …and the session store answers a moment later
			}
			return auth(ctx, req)
		}
	})
	ctx := context.Background()
	c := k.dial()
	if err := c.Emit(protocol.EventAuthenticate, map[string]any{"token": "valid-alice", "slow": true}); err != nil {
		t.Fatal(err)
	}
	<-inAuth
	if err := k.h.DisconnectUserEverywhere(ctx, "alice", 4000, "Logged out"); err != nil {
		t.Fatal(err)
	}
	again, _ := k.login("alice") // logs in again after the close: kept
	close(release)
	expectClose(t, c, 4000, "Logged out")
	for _, m := range c.Messages() {
		if m.Event == protocol.EventConnected {
			t.Fatal("the connection closed for the logout got `connected` first")
		}
	}
	roundTrip(t, again)
	// The closed one stays indexed until its closing handshake is done.
	eventually(t, "alice left with the connection that logged in after the close", func() bool {
		cs := k.h.GetClientsByUser("alice")
		return len(cs) == 1 && !again.Closed()
	})
}

// A kick (RemoveUserFromRooms) made while the room check of the user's
// join runs, which found the client not in the room yet, takes the client
// out once the join lands, and the rooms-changed callback is not told of
// that room; a join that begins after the kick is let in (found in a chat
// trial: a kick lost to a join 1 time in 60).
func TestRemoveUserFromRoomsWinsOverAJoinUnderWay(t *testing.T) {
	changed := make(chan helper.RoomsChangedRequest, 4)
	var inCheck <-chan struct{}
	var release chan struct{}
	k := newKit(t, rawSocket, func(c *helper.Config) {
		inCheck, release = holdRoomCheck(c, "general")
		c.Handlers.RoomsChanged = func(_ context.Context, req helper.RoomsChangedRequest) error {
			changed <- req
			return nil
		}
	})
	ctx := context.Background()
	c, cd := k.login("mallory")
	if err := c.Join("general", "random"); err != nil {
		t.Fatal(err)
	}
	<-inCheck
	if err := k.h.RemoveUserFromRooms(ctx, "mallory", "general"); err != nil {
		t.Fatal(err)
	}
	close(release)
	select {
	case req := <-changed:
		if len(req.Joined) != 1 || req.Joined[0] != "random" {
			t.Fatalf("rooms-changed told of %v, want [random]: the kicked room is not joined", req.Joined)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no rooms-changed call for the join")
	}
	if k.h.InRoom(cd.ID, "general") || !k.h.InRoom(cd.ID, "random") {
		t.Fatalf("after the join: in general %v, in random %v; want random only", k.h.InRoom(cd.ID, "general"), k.h.InRoom(cd.ID, "random"))
	}
	// Invited back: a join that begins after the kick gets in.
	if err := c.Join("general"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-inCheck:
	case <-time.After(5 * time.Second):
		t.Fatal("the second join never reached the room check")
	}
	eventually(t, "the join after the kick", func() bool { return k.h.InRoom(cd.ID, "general") })
}

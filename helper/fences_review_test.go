package helper_test

import (
	"context"
	"testing"
	"time"

	"github.com/fxws/websocket/helper"
)

// A kick then a re-invite (RemoveUserFromRooms, then AddUserToRooms) made
// while an unrelated join of the user's ("lobby") is in its room check: the
// join, landing last, does not undo the re-invite. Only what the join
// added is undone, and by the last order about the room (found in review:
// a first version left every room removed since the join began).
func TestReinviteNotUndoneByUnrelatedJoinUnderWay(t *testing.T) {
	var inCheck <-chan struct{}
	var release chan struct{}
	k := newKit(t, rawSocket, func(c *helper.Config) {
		inCheck, release = holdRoomCheck(c, "lobby")
	})
	ctx := context.Background()
	c, cd := k.login("bob")
	if err := k.h.AddUserToRooms(ctx, "bob", "chan"); err != nil {
		t.Fatal(err)
	}
	if err := c.Join("lobby"); err != nil {
		t.Fatal(err)
	}
	<-inCheck
	if err := k.h.RemoveUserFromRooms(ctx, "bob", "chan"); err != nil { // kick…
		t.Fatal(err)
	}
	if err := k.h.AddUserToRooms(ctx, "bob", "chan"); err != nil { // …and invited back
		t.Fatal(err)
	}
	if !k.h.InRoom(cd.ID, "chan") {
		t.Fatal("AddUserToRooms did not put bob in chan")
	}
	close(release)
	eventually(t, "the lobby join", func() bool { return k.h.InRoom(cd.ID, "lobby") })
	roundTrip(t, c)
	time.Sleep(20 * time.Millisecond)
	if !k.h.InRoom(cd.ID, "chan") {
		t.Fatal("an unrelated join that was under way took bob out of chan after he was invited back")
	}
}

// One session per user, made where the app checks the login: the
// authenticate handler closes the user's other connections before it
// accepts the new one. The new connection is not the user's yet (not
// bound), and was never closed: a DisconnectUser raises no fence, and a
// DisconnectUserEverywhere spares the connection whose callback calls it
// (found in review: a first version of the fences closed the very
// connection that made the call).
func TestDisconnectUserFromAuthenticateKeepsTheNewConnection(t *testing.T) {
	for _, everywhere := range []bool{false, true} {
		t.Run(map[bool]string{false: "DisconnectUser", true: "DisconnectUserEverywhere"}[everywhere], func(t *testing.T) {
			var h *helper.WebSocketServerHelper
			k := newKit(t, rawSocket, func(c *helper.Config) {
				auth := c.Handlers.Authenticate
				c.Handlers.Authenticate = func(ctx context.Context, req helper.AuthenticateRequest) (*helper.AuthResult, error) {
					res, err := auth(ctx, req)
					if res != nil && res.UserID != "" {
						if everywhere {
							_ = h.DisconnectUserEverywhere(ctx, res.UserID, 4001, "Signed in elsewhere")
						} else {
							_, _ = h.DisconnectUser(res.UserID, 4001, "Signed in elsewhere")
						}
					}
					return res, err
				}
			})
			h = k.h
			old, _ := k.login("carol")
			c := k.dial()
			cd, err := c.Authenticate(context.Background(), map[string]any{"token": "valid-carol"})
			if err != nil {
				t.Fatalf("the new session was refused: %v", err)
			}
			expectClose(t, old, 4001, "Signed in elsewhere")
			roundTrip(t, c)
			eventually(t, "carol's new connection alone", func() bool {
				ids := k.h.GetClientsByUser("carol")
				return len(ids) == 1 && ids[0].ID == cd.ID
			})
		})
	}
}

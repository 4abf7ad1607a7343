package helper_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/protocol"
)

// RoomsChanged is told what each join and leave of a client's own changed,
// and the connected and disconnect callbacks carry the client's rooms:
// enough for a presence list (asked for in a user trial, whose presence
// went stale because a leave called nothing).
func TestRoomsChangedAndClientInfoRooms(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		var mu sync.Mutex
		var changes []helper.RoomsChangedRequest
		k := newKit(t, tr, func(c *helper.Config) {
			c.Handlers.RoomsChanged = func(_ context.Context, req helper.RoomsChangedRequest) error {
				mu.Lock()
				changes = append(changes, req)
				mu.Unlock()
				return nil
			}
		})
		took := func() []helper.RoomsChangedRequest {
			mu.Lock()
			defer mu.Unlock()
			out := changes
			changes = nil
			return out
		}
		c, cd := k.login("p")
		k.rec.waitFor(t, "the connected callback", func() bool { return len(k.rec.connected) == 1 })
		if got := k.rec.connected[0].Rooms; !slices.Equal(got, []string{protocol.DefaultRoom, protocol.DefaultNotificationRoom}) {
			t.Fatalf("connected callback rooms %v, want the default rooms", got)
		}

		_ = c.Join("b", "a", "deny-c", "a", protocol.DefaultRoom)
		roundTrip(t, c)
		got := took()
		if len(got) != 1 || !slices.Equal(got[0].Joined, []string{"b", "a"}) || len(got[0].Left) != 0 ||
			got[0].ClientID != cd.ID || got[0].UserID != "p" {
			t.Fatalf("after a join: %+v, want one change joining [b a] for p", got)
		}
		_ = c.Join("a") // already in: nothing changed
		_ = c.Leave("zzz")
		roundTrip(t, c)
		if got := took(); len(got) != 0 {
			t.Fatalf("a join and a leave that changed nothing were reported: %+v", got)
		}
		_ = c.Leave("b", "zzz", "b")
		roundTrip(t, c)
		if got := took(); len(got) != 1 || !slices.Equal(got[0].Left, []string{"b"}) || len(got[0].Joined) != 0 {
			t.Fatalf("after a leave: %+v, want one change leaving [b]", got)
		}
		// Server-side changes are the app's own: not reported.
		k.h.JoinRoom(cd.ID, "server-room")
		k.h.LeaveRoom(cd.ID, "a")
		roundTrip(t, c)
		if got := took(); len(got) != 0 {
			t.Fatalf("server-side join and leave reported: %+v", got)
		}
		_ = c.Close()
		k.rec.waitFor(t, "the disconnect callback", func() bool { return len(k.rec.disconnected) == 1 })
		if got := k.rec.disconnected[0].Rooms; !slices.Equal(got, []string{"server-room", protocol.DefaultRoom, protocol.DefaultNotificationRoom}) {
			t.Fatalf("disconnect callback rooms %v", got)
		}
	})
}

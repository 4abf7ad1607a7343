package helper_test

import (
	"context"
	"testing"

	"github.com/fxws/websocket/helper"
)

// A join of the client's own that a kick made during its room check
// undoes entirely leaves nothing behind in the rooms-changed log: the
// entry of a client with nothing to tell goes (a log entry per such
// client would stay until it leaves, and keep the log's map from being
// made afresh after a crowd).
func TestRoomsChangedByServerCancelledJoinLeavesNoLog(t *testing.T) {
	p := newPresence()
	inCheck := make(chan struct{}, 1)
	release := make(chan struct{})
	k := newKit(t, rawSocket, func(cfg *helper.Config) {
		p.install(cfg)
		check := cfg.Handlers.ValidateRoom
		cfg.Handlers.ValidateRoom = func(ctx context.Context, req helper.ValidateRoomRequest) ([]string, error) {
			if req.Rooms[0] == "general" {
				inCheck <- struct{}{}
				<-release
			}
			return check(ctx, req)
		}
	})
	ctx := context.Background()
	c, cd := k.login("mallory")
	p.waitFor(t, "the connected callback", func() bool { return p.ready[cd.ID] })
	if err := c.Join("general"); err != nil {
		t.Fatal(err)
	}
	<-inCheck
	if err := k.h.RemoveUserFromRooms(ctx, "mallory", "general"); err != nil {
		t.Fatal(err)
	}
	close(release)
	roundTrip(t, c)
	if got := p.takeEvents(); len(got) != 0 {
		t.Fatalf("told %v", got)
	}
	if k.h.InRoom(cd.ID, "general") {
		t.Fatal("the kicked room was joined")
	}
	if n := k.h.RoomsChangedLogs(); n != 0 {
		t.Fatalf("%d rooms-changed logs kept for a client with nothing to tell", n)
	}
	p.check(t)
}

package helper

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/fxws/websocket/protocol"
	"github.com/gobwas/ws/wsutil"
)

// A join-user order (here its broadcast copy, from another instance) that
// meets the user's only connection here at the end of its authentication:
// userRoomsLocal reads the user's connections (none bound yet), then
// raises its fence; the authentication binds the connection and checks the
// fences between the two, finding none. The connection is then neither in
// the pass nor told by a fence, and never joins the room, though the order
// was made while it authenticated ("A connection whose authentication as
// userID is under way joins the rooms once it completes"). The fence must
// be raised before the read, as disconnectUser does. The test holds the
// fences' lock to stop the order at that point, where a broker worker may
// be preempted.
func TestUserOrderMeetingAnAuthenticationsEndIsNotLost(t *testing.T) {
	inAuth, release := make(chan struct{}), make(chan struct{})
	h, err := New(Config{Handlers: Handlers{
		Authenticate: func(context.Context, AuthenticateRequest) (*AuthResult, error) {
			close(inAuth)
			<-release
			return &AuthResult{UserID: "dave"}, nil
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	conn := startAndDial(t, h)
	if err := wsutil.WriteClientText(conn, []byte(`{"event":"authenticate","data":{"token":"t"}}`)); err != nil {
		t.Fatal(err)
	}
	<-inAuth
	c := onlyClient(t, h)

	// The order's broker worker has read the user's connections (none) and
	// is about to raise its fence.
	h.fences.mu.Lock()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		h.userRoomsFromBroker(protocol.TypeJoinUser, "dave", []byte(`{"rooms":["general"],"order":"o-1"}`))
	}()
	time.Sleep(100 * time.Millisecond) // past appendUser, waiting on the fences' lock
	close(release)
	waitFor(t, "the authentication to complete", func() bool { return c.state.Load() == stAuthenticated })
	h.fences.mu.Unlock()
	wg.Wait()

	if !h.InRoom(c.id, "general") {
		t.Fatal("a join-user order made while the connection authenticated was lost: the connection was bound between the order's read of the user's connections and its fence")
	}
}

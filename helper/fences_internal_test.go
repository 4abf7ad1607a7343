package helper

import (
	"context"
	"fmt"
	"testing"
)

// A mass logout (a token store revoked, every instance hearing every
// disconnect-user envelope) on an instance where none of the users has a
// connection, let alone one authenticating, keeps no fence: they stand 11 s
// at least, and the map would grow with the rate of calls times that, be
// scanned under the lock joins and authentications take, and keep the
// lock-free fast path (fences.n) off (found in review).
func TestFencesOnlyWhereSomethingIsUnderWay(t *testing.T) {
	h, err := New(Config{Handlers: Handlers{
		Authenticate: func(context.Context, AuthenticateRequest) (*AuthResult, error) { return &AuthResult{UserID: "u"}, nil },
	}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100000 {
		if _, err := h.DisconnectUser(fmt.Sprintf("user-%d", i), 4000, "Logged out", "some-client-id"); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.RemoveUserFromRooms(context.Background(), "nobody", "room"); err != nil {
		t.Fatal(err)
	}
	h.fences.mu.Lock()
	n := len(h.fences.byUser)
	h.fences.mu.Unlock()
	if n != 0 || h.fences.n.Load() != 0 {
		t.Fatalf("%d users fenced (fast path n=%d) on an instance with no connection authenticating or joining", n, h.fences.n.Load())
	}
}

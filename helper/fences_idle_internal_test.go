package helper

import (
	"context"
	"testing"
	"time"

	"github.com/gobwas/ws/wsutil"
)

// Fences are let go once they have stood their time, also on an instance
// that then sees no further logout or kick: they were only pruned by the
// next raise, so after a burst of kicks the users' fences stayed for good,
// and with them the slow path of every join and authentication (fences.n
// above 0). Found in a soak: 64–225 users fenced on each of three
// instances minutes after the load had stopped, none of them connected.
func TestFencesLetGoOnAQuietInstance(t *testing.T) {
	h, err := New(Config{Handlers: Handlers{
		Authenticate: func(context.Context, AuthenticateRequest) (*AuthResult, error) {
			return &AuthResult{UserID: "bob"}, nil
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	h.fences.keep = int64(100 * time.Millisecond) // fenceFor's 11 s at least, shortened for the test
	conn := startAndDial(t, h)
	if err := wsutil.WriteClientText(conn, []byte(`{"event":"authenticate","data":{}}`)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := wsutil.ReadServerText(conn); err != nil { // connected
		t.Fatal(err)
	}
	// A kick of a connected user: the one fence of this instance's life.
	if err := h.RemoveUserFromRooms(context.Background(), "bob", "room"); err != nil {
		t.Fatal(err)
	}
	if !h.fences.active() {
		t.Fatal("a kick of a connected user raised no fence")
	}
	deadline := time.Now().Add(3 * time.Second) // 30 times the fences' time, and more than a sweep
	for h.fences.active() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	h.fences.mu.Lock()
	users := len(h.fences.byUser)
	h.fences.mu.Unlock()
	if h.fences.active() || users != 0 {
		t.Fatalf("3 s after the only fence (standing 100 ms): %d users fenced, fast path n=%d; want none", users, h.fences.n.Load())
	}
}

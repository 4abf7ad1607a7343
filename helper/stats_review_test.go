package helper_test

import (
	"context"
	"testing"
	"time"

	"github.com/fxws/websocket/protocol"
	"github.com/gobwas/ws"
)

// Stats.Received counts a binary message that is not UTF-8, answered with
// the error event before handleMessage (found in review).
func TestReceivedCountsABinaryMessageAnsweredWithAnError(t *testing.T) {
	k := newKit(t, rawSocket, nil)
	c, _ := k.login("u1") // 1
	before := k.h.Stats().Received
	if err := c.WriteFrame(ws.NewBinaryFrame([]byte{0xff, 0xfe})); err != nil {
		t.Fatal(err)
	}
	expectError(t, c, protocol.ErrTextInvalidFormat)
	if got := k.h.Stats().Received - before; got != 1 {
		t.Fatalf("Received grew by %d for a complete binary message answered with an error, want 1", got)
	}
}

// Stats.IdleTimeouts counts the idle sweep's closes only, not an app's
// Disconnect(id, 1001, "Idle timeout") (found in review: it went by the
// code and reason).
func TestIdleTimeoutsExcludeADisconnect(t *testing.T) {
	k := newKit(t, rawSocket, nil)
	c, cd := k.login("u1")
	if ok, err := k.h.Disconnect(cd.ID, int(protocol.CloseGoingAway), protocol.ReasonIdleTimeout); !ok || err != nil {
		t.Fatalf("Disconnect: %v %v", ok, err)
	}
	_, _, _ = c.ExpectClose(context.Background())
	eventually(t, "the client gone", func() bool { return k.h.Stats().Clients == 0 })
	time.Sleep(50 * time.Millisecond)
	if s := k.h.Stats(); s.IdleTimeouts != 0 {
		t.Fatalf("IdleTimeouts = %d after a Disconnect (ServerCloses %v); the idle sweep ended nobody", s.IdleTimeouts, s.ServerCloses)
	}
}

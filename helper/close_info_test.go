package helper_test

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxws/websocket/helper"
	"github.com/gobwas/ws"
)

// A client that sends a message, a close frame, then closes its socket
// keeps its call even when the server then writes to it and the peer's
// kernel answers with a reset: a reset cannot be told from a drop, so no
// sweep cuts a call short on one (a one-second sweep that did was removed
// after review).
func TestOrderlyCloseThenServerWriteKeepsTheCall(t *testing.T) {
	var ctxEnded, finished atomic.Bool
	k := newKit(t, rawSocket, func(c *helper.Config) {
		c.Options.HeartbeatInterval = time.Hour
		rec := c.Handlers.Message
		c.Handlers.Message = func(ctx context.Context, req helper.MessageRequest) error {
			if err := rec(ctx, req); err != nil {
				return err
			}
			if req.Message.Event != "save" {
				return nil
			}
			select {
			case <-time.After(2500 * time.Millisecond): // a database write
				finished.Store(true)
			case <-ctx.Done():
				ctxEnded.Store(true)
				return ctx.Err()
			}
			return nil
		}
	})
	c, _ := k.login("orderly")
	_ = c.Emit("save", 1)
	k.rec.waitFor(t, "the message taken", func() bool { return len(k.rec.messages) == 1 })
	_ = c.WriteFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))
	_ = c.Conn().(*net.TCPConn).Close() // an orderly close: FIN
	time.Sleep(50 * time.Millisecond)
	// Other traffic for this client (a room broadcast, say).
	_, _ = k.h.Broadcast("tick", 1)
	deadline := time.Now().Add(4 * time.Second)
	for !ctxEnded.Load() && !finished.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	k.rec.waitFor(t, "the disconnect", func() bool { return len(k.rec.disconnected) == 1 })
	k.rec.mu.Lock()
	d := k.rec.disconnected[0]
	k.rec.mu.Unlock()
	t.Logf("disconnect callback: %d %q by %q", d.CloseCode, d.CloseReason, d.ClosedBy)
	if ctxEnded.Load() {
		t.Fatalf("a client that closed in order (close frame 1000, then FIN) had its call's context ended by the one-second sweep after the server wrote to it (the peer's reset to that write is taken for a dropped connection); the disconnect callback reports %d %q by %q", d.CloseCode, d.CloseReason, d.ClosedBy)
	}
}

// ClientInfo.CloseReason is the reason the close frame carried: a long one
// is cut to the frame's 123 bytes for the callback too (found in review).
func TestCloseReasonIsWhatTheFrameCarried(t *testing.T) {
	k := newKit(t, rawSocket, nil)
	c, cd := k.login("banned")
	long := strings.Repeat("r", 200)
	if ok, _ := k.h.Disconnect(cd.ID, 4200, long); !ok {
		t.Fatal("Disconnect failed")
	}
	_, sent, err := c.ExpectClose(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var info helper.ClientInfo
	k.rec.waitFor(t, "the disconnect callback", func() bool {
		for _, i := range k.rec.disconnected {
			if i.ClientID == cd.ID {
				info = i
				return true
			}
		}
		return false
	})
	if info.CloseReason != sent {
		t.Fatalf("the close frame carried a %d-byte reason, the disconnect callback reports a %d-byte one", len(sent), len(info.CloseReason))
	}
}

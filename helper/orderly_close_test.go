package helper_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxws/websocket/helper"
	"github.com/gobwas/ws"
)

// A client that sends its last messages and a close frame, then shuts its
// side (FIN) while still reading, has its call finish with its context,
// gets the reply, and has the message after it handled too, as the
// original handles everything received before a close. (A first version
// of the one-second sweep for clients in app calls took any FIN for a
// drop; found in review.)
func TestOrderlyCloseAfterAMessageKeepsTheCall(t *testing.T) {
	var ctxEnded atomic.Bool
	var h atomic.Pointer[helper.WebSocketServerHelper]
	k := newKit(t, rawSocket, func(c *helper.Config) {
		holdSave(c, 2*time.Second, &ctxEnded, func(req helper.MessageRequest) {
			_, _ = h.Load().SendToClient(req.ClientID, "saved", 1)
		})
	})
	h.Store(k.h)
	c, _ := k.login("orderly")
	_ = c.Emit("save", 1)
	_ = c.Emit("last", 2)
	k.rec.waitFor(t, "the message taken", func() bool { return len(k.rec.messages) == 1 })
	// Done sending: a Close frame, then the client shuts its side (FIN),
	// still reading the server's answer.
	_ = c.WriteFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))
	_ = c.Conn().(*net.TCPConn).CloseWrite()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.Expect(ctx, "saved")
	k.rec.waitFor(t, "the disconnect", func() bool { return len(k.rec.disconnected) == 1 })
	k.rec.mu.Lock()
	n := len(k.rec.messages)
	k.rec.mu.Unlock()
	if ctxEnded.Load() || err != nil || n != 2 {
		t.Fatalf("client closed in order after two messages: call's context cancelled %v, reply %v, messages handled %d of 2", ctxEnded.Load(), err, n)
	}
}

// A client that sends a message, a close frame, then closes its socket
// keeps its call even when the server then writes to it and the peer's
// kernel answers with a reset: a reset cannot be told from a drop, so no
// sweep cuts a call short on one (a one-second sweep that did was removed
// after review).
func TestOrderlyCloseThenServerWriteKeepsTheCall(t *testing.T) {
	var ctxEnded, finished atomic.Bool
	k := newKit(t, rawSocket, func(c *helper.Config) {
		holdSave(c, 2500*time.Millisecond, &ctxEnded, func(helper.MessageRequest) { finished.Store(true) })
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

// holdSave makes "save" take d, as a database write would, with no
// heartbeat sweep in the way: ctxEnded is set if the call's context ends
// first; done runs once the write is over.
func holdSave(c *helper.Config, d time.Duration, ctxEnded *atomic.Bool, done func(helper.MessageRequest)) {
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
		case <-time.After(d):
		case <-ctx.Done():
			ctxEnded.Store(true)
			return ctx.Err()
		}
		done(req)
		return nil
	}
}

// A client that drops its connection (no close frame: a killed process, a
// reset) while the app's code has one of its messages is let go within a
// second or two: the call's context ends and the disconnect callback says
// 1006, long before the call would have returned (from a user trial: it
// waited for the next heartbeat sweep, 30 s by default).
func TestDroppedDuringACallIsLetGoSoon(t *testing.T) {
	for _, tr := range []transport{rawSocket, rawGoroutine} {
		for _, reset := range []bool{false, true} {
			var ctxEnded atomic.Bool
			k := newKit(t, tr, func(c *helper.Config) {
				holdSave(c, 20*time.Second, &ctxEnded, func(helper.MessageRequest) {})
			})
			c, _ := k.login("device")
			_ = c.Emit("save", 1)
			_ = c.Emit("more", 2) // unread input that is not a close
			k.rec.waitFor(t, "the message taken", func() bool { return len(k.rec.messages) == 1 })
			if reset {
				_ = c.Conn().(*net.TCPConn).SetLinger(0)
			}
			_ = c.Abort()
			deadline := time.Now().Add(8 * time.Second)
			for !ctxEnded.Load() && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if !ctxEnded.Load() {
				t.Fatalf("%s, reset %v: a client that dropped during a 20 s call still held it 8 s later", tr, reset)
			}
			k.rec.waitFor(t, "the disconnect", func() bool { return len(k.rec.disconnected) == 1 })
			if d := k.rec.disconnected[0]; d.CloseCode != 1006 || d.ClosedBy != "" {
				t.Fatalf("%s, reset %v: disconnect %d by %q, want 1006 by nobody", tr, reset, d.CloseCode, d.ClosedBy)
			}
		}
	}
}

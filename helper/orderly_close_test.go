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
		c.Options.HeartbeatInterval = time.Hour // no heartbeat sweep in this test
		rec := c.Handlers.Message
		c.Handlers.Message = func(ctx context.Context, req helper.MessageRequest) error {
			if err := rec(ctx, req); err != nil {
				return err
			}
			if req.Message.Event != "save" {
				return nil
			}
			select {
			case <-time.After(2 * time.Second): // a database write, say
			case <-ctx.Done():
				ctxEnded.Store(true)
				return ctx.Err()
			}
			_, _ = h.Load().SendToClient(req.ClientID, "saved", 1)
			return nil
		}
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

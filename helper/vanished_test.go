package helper_test

import (
	"context"
	"testing"
	"time"

	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/protocol"
)

// A message callback that waits on its context for a client that then
// vanishes: the client is closed, ending ctx, the call and the connection,
// although nothing is read from it while the call runs. (From a review: a
// first version of the standstill held such a client until Shutdown.)
func TestVanishedClientInCallbackIsEventuallyClosed(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		const timeout = 200 * time.Millisecond
		k := newKit(t, tr, func(c *helper.Config) {
			c.Options.IdleTimeout = timeout
			// "wait" holds the read side until the client goes, as a long
			// poll ended by the client's context would.
			holdMessages(c, timeout, "wait", untilDone)
		})
		c, cd := k.login("gone")
		_ = c.Emit("wait", nil)
		k.rec.waitFor(t, "the message taken", func() bool { return len(k.rec.messages) == 1 })
		_ = c.Abort() // the client vanishes while its message is in the app
		deadline := time.Now().Add(10 * timeout)
		for time.Now().Before(deadline) {
			for _, id := range k.rec.disconnectedIDs() {
				if id == cd.ID {
					return
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("a vanished client whose callback waits on ctx is still held %v later (heartbeat and idle timeouts %v); stats %+v",
			10*timeout, timeout, k.h.Stats())
	})
}

// A client that goes silent (no close, nothing sent) while the app has its
// message is closed 4002 once HeartbeatTimeout has passed without a byte
// from it, which ends the call's context.
func TestSilentClientInCallbackIsClosed(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		const timeout = 300 * time.Millisecond
		k := newKit(t, tr, func(c *helper.Config) { holdMessages(c, timeout, "wait", untilDone) })
		c, _ := k.login("quiet")
		_ = c.Emit("wait", nil)
		start := time.Now()
		expectClose(t, c, protocol.CloseHeartbeatTimeout, protocol.ReasonHeartbeatTimeout)
		if d := time.Since(start); d < timeout-50*time.Millisecond {
			t.Fatalf("closed after %v, before HeartbeatTimeout (%v)", d, timeout)
		}
	})
}

// holdMessages sets a kit's heartbeat to timeout (swept every 20 ms) and
// has its message handler, once it has recorded a message of event, run
// hold before it returns: the read side is the app's meanwhile.
func holdMessages(c *helper.Config, timeout time.Duration, event string, hold func(context.Context) error) {
	c.Options.HeartbeatInterval = 20 * time.Millisecond
	c.Options.HeartbeatTimeout = timeout
	rec := c.Handlers.Message
	c.Handlers.Message = func(ctx context.Context, req helper.MessageRequest) error {
		if err := rec(ctx, req); err != nil {
			return err
		}
		if req.Message.Event == event {
			return hold(ctx)
		}
		return nil
	}
}

// untilDone holds until the client's context ends.
func untilDone(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

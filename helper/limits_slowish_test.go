package helper_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxws/websocket/helper"
)

// TestRateLimitForgivesWhatTheServerHeldUp with a handler that takes 3 ms
// for each "cursor" (a small database write): the steady client at 15/s
// under 20/s keeps the 1.5 s save's credit while its backlog is read, each
// message of it a call of its own (found in review: a first version let the
// first 3 ms call replace the 1.5 s credit).
func TestRateLimitCreditLastsThroughTheBacklog(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		var ctxEnded atomic.Bool
		k := newKit(t, tr, func(c *helper.Config) {
			c.Options.Limits = helper.Limits{MessagesPerSecond: 20, MessageBurst: 10}
			holdSave(c, 1500*time.Millisecond, &ctxEnded, func(helper.MessageRequest) {})
			inner := c.Handlers.Message
			c.Handlers.Message = func(ctx context.Context, req helper.MessageRequest) error {
				if req.Message.Event == "cursor" {
					time.Sleep(3 * time.Millisecond)
				}
				return inner(ctx, req)
			}
		})
		c, _ := k.login("steady")
		_ = c.Emit("save", 1)
		tick := time.NewTicker(time.Second / 15)
		defer tick.Stop()
		for i := range 38 {
			<-tick.C
			if err := c.Emit("cursor", i); err != nil {
				break // closed: the stats below say why
			}
		}
		time.Sleep(200 * time.Millisecond)
		if s := k.h.Stats(); s.RateLimited != 0 {
			t.Fatalf("a client at 15/s under a 20/s limit was closed for its rate after a 1.5 s call, its other messages taking 3 ms each (RateLimited %d)", s.RateLimited)
		}
	})
}

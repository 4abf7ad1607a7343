package helper_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/fxws/websocket/helper"
	"github.com/gobwas/ws"
)

// TestRateLimitSavesNoUnusedRate with a handler that takes 480 ms for each
// "work" message and a client that sends the first byte of its next frame
// with each frame: nothing waits but that byte, so nothing is forgiven,
// and after 4 s at 2/s under 20/s (burst 10), 60 messages at once close
// it (found in review: a version that counted call time let them in).
func TestRateLimitNotBankedByASplitFrame(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, func(c *helper.Config) {
			c.Options.Limits = helper.Limits{MessagesPerSecond: 20, MessageBurst: 10}
			inner := c.Handlers.Message
			c.Handlers.Message = func(ctx context.Context, req helper.MessageRequest) error {
				if req.Message.Event == "work" {
					time.Sleep(480 * time.Millisecond)
				}
				return inner(ctx, req)
			}
		})
		c, _ := k.login("u1")
		work := rawFrame(true, 0, ws.OpText, true, []byte(`{"event":"work","data":1}`))
		if err := c.WriteRaw(work[:1]); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 8; i++ { // 4 s at 2/s: a tenth of the rate
			b := append(append([]byte(nil), work[1:]...), work[0]) // this frame's rest, the next one's first byte
			if err := c.WriteRaw(b); err != nil {
				t.Fatal(err)
			}
			time.Sleep(500 * time.Millisecond)
		}
		var flood bytes.Buffer
		flood.Write(work[1:]) // the ninth "work", then a flood
		for i := 0; i < 60; i++ {
			flood.Write(rawFrame(true, 0, ws.OpText, true, []byte(`{"event":"tick","data":1}`)))
		}
		if err := c.WriteRaw(flood.Bytes()); err != nil {
			t.Fatal(err)
		}
		_ = c.SendText("not json")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		got, err := c.ExpectError(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got != "Rate limit exceeded" {
			t.Fatalf("60 messages at once with a burst of 10, after 4 s at 2/s that left one byte unread after each 480 ms call, were all let in (%d handled, then %q): unused rate banked past the burst", k.rec.messageCount(), got)
		}
	})
}

package helper_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/fxws/websocket/helper"
	"github.com/gobwas/ws"
)

// A client well under its rate does not save up what it leaves unused:
// after 4 s at 4/s under 20/s (burst 10), 60 messages at once close it
// (found in review: a first version of the standstill credit let every
// handled message keep the limiter from moving to the present).
func TestRateLimitSavesNoUnusedRate(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, withLimits(helper.Limits{MessagesPerSecond: 20, MessageBurst: 10}))
		c, _ := k.login("u1")
		for i := 0; i < 16; i++ { // 4 s at 4/s: a fifth of the rate
			if err := c.Emit("tick", i); err != nil {
				t.Fatal(err)
			}
			time.Sleep(250 * time.Millisecond)
		}
		var flood bytes.Buffer
		for i := 0; i < 60; i++ {
			flood.Write(rawFrame(true, 0, ws.OpText, true, []byte(`{"event":"tick","data":1}`)))
		}
		if err := c.WriteRaw(flood.Bytes()); err != nil { // one write, well under one read buffer
			t.Fatal(err)
		}
		_ = c.SendText("not json")
		got, err := c.ExpectError(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got != "Rate limit exceeded" {
			t.Fatalf("60 messages at once with a burst of 10 were all let in (%d handled, then %q): unused rate banked past the burst", k.rec.messageCount(), got)
		}
	})
}

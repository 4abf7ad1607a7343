package helper_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxws/websocket/helper"
)

// A steady client under its rate whose messages are a couple of KiB waits
// out a 1.5 s call with about 55 KB queued, more than the 16 KiB looked
// at: the call's worth is forgiven all the same (found in review: only the
// frames seen were, and the client was closed 1008).
func TestRateLimitForgivesLargeMessagesAfterASlowCall(t *testing.T) {
	for _, tr := range []transport{rawSocket, rawGoroutine} {
		t.Run(string(tr), func(t *testing.T) {
			var ctxEnded atomic.Bool
			k := newKit(t, tr, func(c *helper.Config) {
				c.Options.Limits = helper.Limits{MessagesPerSecond: 20, MessageBurst: 10}
				holdSave(c, 1500*time.Millisecond, &ctxEnded, func(helper.MessageRequest) {})
			})
			c, _ := k.login("steady")
			_ = c.Emit("save", 1)
			body := strings.Repeat("x", 2048)
			tick := time.NewTicker(time.Second / 18)
			defer tick.Stop()
			for range 40 { // 18/s for about 2.2 s
				<-tick.C
				if err := c.Emit("patch", body); err != nil {
					break
				}
			}
			time.Sleep(300 * time.Millisecond)
			if s := k.h.Stats(); s.RateLimited != 0 {
				t.Fatalf("a client at 18/s under a 20/s limit, 2 KiB messages, was closed for its rate after one 1.5 s call (RateLimited %d)", s.RateLimited)
			}
		})
	}
}

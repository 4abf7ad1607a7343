package helper_test

import (
	"bytes"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxws/websocket/helper"
	"github.com/gobwas/ws"
)

// Two slow calls back to back (a double click on "save", or two writes
// during a database hiccup) hold a steady client's input for 3 s: over a
// socket the server can ask, what waited is forgiven for both (found in
// review). Where it cannot (the fallback path, as TLS) one call's worth is
// forgiven, a documented limit: this test runs on the raw transports.
func TestRateLimitCoversBackToBackSlowCalls(t *testing.T) {
	for _, tr := range []transport{rawSocket, rawGoroutine} {
		t.Run(string(tr), func(t *testing.T) {
			t.Parallel()
			backToBackSlowCalls(t, tr)
		})
	}
}

func backToBackSlowCalls(t *testing.T, tr transport) {
	var ctxEnded atomic.Bool
	k := newKit(t, tr, func(c *helper.Config) {
		c.Options.Limits = helper.Limits{MessagesPerSecond: 20, MessageBurst: 10}
		holdSave(c, 1500*time.Millisecond, &ctxEnded, func(helper.MessageRequest) {})
	})
	c, _ := k.login("steady")
	save := rawFrame(true, 0, ws.OpText, true, []byte(`{"event":"save","data":1}`))
	if err := c.WriteRaw(bytes.Join([][]byte{save, save}, nil)); err != nil { // a double click
		t.Fatal(err)
	}
	tick := time.NewTicker(time.Second / 18)
	defer tick.Stop()
	for i := range 70 { // 18/s for about 3.9 s
		<-tick.C
		if err := c.Emit("cursor", i); err != nil {
			break // closed: the stats below say why
		}
	}
	time.Sleep(300 * time.Millisecond)
	if s := k.h.Stats(); s.RateLimited != 0 {
		t.Fatalf("a client at 18/s under a 20/s limit was closed for its rate after two back-to-back 1.5 s calls (RateLimited %d)", s.RateLimited)
	}
}

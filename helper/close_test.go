package helper_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// A client that closes while fan-outs are flowing gets the server's close
// reply. The reply is queued behind fan-out frames waiting for the flusher;
// the read side ends before the flusher's turn, and must leave the queue to
// be written rather than close the socket under it.
func TestCloseReplyBehindPendingFanout(t *testing.T) {
	for _, tr := range []transport{rawSocket, rawGoroutine} {
		t.Run(string(tr), func(t *testing.T) {
			k := newKit(t, tr, nil)
			listener, _ := k.login("listener")
			var stop atomic.Bool
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() {
					_, _ = k.h.Broadcast("tick", 1)
					time.Sleep(50 * time.Microsecond)
				}
			}()
			defer func() { stop.Store(true); wg.Wait() }()
			lost := 0
			const rounds = 40
			for i := 0; i < rounds; i++ {
				c, _ := k.login("u")
				time.Sleep(time.Millisecond) // let broadcasts reach it
				if err := c.WriteFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))); err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				code, _, err := c.ExpectClose(ctx)
				cancel()
				if err != nil {
					t.Fatal(err)
				}
				if code != ws.StatusNormalClosure {
					lost++
					if lost == 1 {
						t.Logf("close code seen by the client: %d", code)
					}
				}
				_ = listener.Messages()
			}
			if lost > 0 {
				t.Fatalf("%d of %d client-initiated closes got no close reply (connection dropped)", lost, rounds)
			}
		})
	}
}

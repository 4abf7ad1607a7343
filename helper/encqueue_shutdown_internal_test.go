package helper

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxws/websocket/protocol"
)

// No encrypted-queue worker starts once Shutdown has begun: one that did
// (a check of closing, then the spawn, apart) was added to the tasks
// Shutdown waits for as it waited, and outlived it (found in review).
func TestEncQueueWorkerDoesNotOutliveShutdown(t *testing.T) {
	var late atomic.Int64
	for i := 0; i < 300 && late.Load() == 0; i++ {
		var stopped atomic.Bool
		h, err := New(Config{
			Options: Options{EncryptedBatchLimit: 1},
			Handlers: Handlers{
				Authenticate: func(context.Context, AuthenticateRequest) (*AuthResult, error) { return &AuthResult{UserID: "u"}, nil },
				OutboundTransformer: func(context.Context, OutboundRequest) (*protocol.Message, error) {
					if stopped.Load() {
						late.Add(1)
					}
					return nil, errors.New("not sent")
				},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		c := &client{h: h, id: "c"}
		m := newOutgoing("news", []byte("1"))
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stopped.Load() {
				h.enc.add(c, m, false)
			}
		}()
		time.Sleep(50 * time.Microsecond)
		_ = h.Shutdown(context.Background())
		stopped.Store(true)
		wg.Wait()
		time.Sleep(time.Millisecond)
	}
	if n := late.Load(); n > 0 {
		t.Fatalf("the outbound transformer ran %d times after Shutdown returned (a worker spawned past Shutdown's wait on its tasks)", n)
	}
}

package helper

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/fxws/websocket/broker"
	"go.uber.org/zap"
)

// restorations carries the broker's reports of a subscription made again
// to the goroutine that calls Handlers.BrokerRestored. The broker reports
// from its reconnect loop, which must not wait for the app: a report only
// adds to what the next call covers.
type restorations struct {
	mu   sync.Mutex
	n    int
	down time.Duration
	wake chan struct{} // holds one wake-up at most
}

func newRestorations() *restorations {
	return &restorations{wake: make(chan struct{}, 1)}
}

// note adds a restoration after down without a subscription.
func (r *restorations) note(down time.Duration) {
	r.mu.Lock()
	r.n++
	r.down = max(r.down, down)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default: // a wake-up is already waiting; it takes this one too
	}
}

// take returns what was noted since the last take, and clears it.
func (r *restorations) take() BrokerRestoredInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	info := BrokerRestoredInfo{Restorations: r.n, Down: r.down}
	r.n, r.down = 0, 0
	return info
}

// watchRestorations asks the broker to report restorations when the app
// wants to hear of them; the returned function calls the app's handler for
// them until ctx ends. It returns nil when there is nothing to watch.
func (h *WebSocketServerHelper) watchRestorations() func(ctx context.Context) {
	cb := h.handlers.BrokerRestored
	if cb == nil {
		return nil
	}
	n, ok := h.broker.(broker.RestoreNotifier)
	if !ok {
		h.log.Info("the broker does not report restored subscriptions: the broker-restored handler will not be called",
			zap.String("broker", fmt.Sprintf("%T", h.broker)))
		return nil
	}
	r := newRestorations()
	n.NotifyRestored(r.note)
	return func(ctx context.Context) {
		for {
			select {
			case <-ctx.Done():
				return
			case <-r.wake:
			}
			if ctx.Err() != nil {
				return // select picks at random when both are ready
			}
			info := r.take()
			if info.Restorations == 0 {
				continue
			}
			if err := safeCall(func() error { return cb(ctx, info) }); err != nil {
				h.stats.handlerErrors.Add(1)
				h.log.Error("broker-restored handler failed", zap.Int("restorations", info.Restorations),
					zap.Duration("down", info.Down), zap.Error(err))
			}
		}
	}
}

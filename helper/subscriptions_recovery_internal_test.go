package helper

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
)

// recoveringBroker refuses changes while down, as the Redis broker does
// while Redis is away, and records what it holds once it is back.
type recoveringBroker struct {
	failingBroker
	down atomic.Bool
	mu   sync.Mutex
	held map[string]bool
}

func (b *recoveringBroker) change(add bool, chans []string) error {
	if b.down.Load() {
		return errors.New("redisbroker: subscription connection unavailable")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, ch := range chans {
		b.held[ch] = add
	}
	return nil
}

func (b *recoveringBroker) Subscribe(_ context.Context, chans ...string) error {
	return b.change(true, chans)
}

func (b *recoveringBroker) Unsubscribe(_ context.Context, chans ...string) error {
	return b.change(false, chans)
}

func (b *recoveringBroker) holds(ch string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held[ch]
}

// Once the broker is back, a login's sync means again "the broker holds my
// channels" (`connected` is sent after it: a send from another instance
// right after `connected` must not be lost). A first version of the paced
// retries settled every change made while failing at once, without trying
// it, so a login in the second after Redis was back got `connected` before
// its channel was subscribed (found in review).
func TestSyncAfterBrokerRecoveryWaitsForTheChange(t *testing.T) {
	b := &recoveringBroker{held: map[string]bool{}}
	b.down.Store(true)
	s := newSubscriptions(b, zap.NewNop())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.run(ctx) }()
	defer func() { cancel(); <-done }()

	// A change during the outage: it fails, and is retried a second later.
	s.want("ws:client:during-outage")
	wait, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	if err := s.sync(wait); err != nil {
		t.Fatal(err)
	}

	// Redis is back (the broker reconnected); a client logs in now.
	b.down.Store(false)
	s.want("ws:client:after-recovery")
	if err := s.sync(wait); err != nil {
		t.Fatal(err)
	}
	if !b.holds("ws:client:after-recovery") {
		t.Fatal("sync returned (so `connected` would be sent) with the broker up but the client's channel neither subscribed nor even tried: a send right after `connected` is lost")
	}
}

package helper

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/fxws/websocket/broker"
	"go.uber.org/zap"
)

// failingBroker refuses every change, as a broker without Redis does.
type failingBroker struct{ broker.Broker }

func (failingBroker) Subscribe(context.Context, ...string) error {
	return errors.New("unavailable")
}
func (failingBroker) Unsubscribe(context.Context, ...string) error {
	return errors.New("unavailable")
}

// A login that waits for its subscriptions while the helper shuts down
// stops waiting once the changes have stopped, not after SubscribeTimeout.
func TestSyncEndsWhenSubscriptionsStop(t *testing.T) {
	s := newSubscriptions(failingBroker{}, zap.NewNop())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.run(ctx) }()
	cancel()
	<-done
	s.want("ws:user:u") // a login binding its user just after
	wait, stop := context.WithTimeout(context.Background(), time.Hour)
	defer stop()
	if err := s.sync(wait); !errors.Is(err, errSubscriptionsStopped) {
		t.Fatalf("sync after the changes stopped: %v, want errSubscriptionsStopped", err)
	}
}

// Every change is sent, whatever was sent before: a failed call may have
// taken effect (the Redis broker keeps it), so the helper keeps no record of
// what the broker holds. A failed change is retried unless overridden.
func TestEveryChangeIsSent(t *testing.T) {
	rb := &recordingBroker{}
	s := newSubscriptions(rb, zap.NewNop())
	s.want("ch")
	s.apply(context.Background()) // subscribe succeeds
	rb.fail = true
	s.unwant("ch")
	s.apply(context.Background()) // unsubscribe fails: kept for a retry
	rb.fail = false
	s.want("ch") // overrides the retry
	s.apply(context.Background())
	if got := rb.calls[len(rb.calls)-1]; got != "+ch" {
		t.Fatalf("calls %v: the last change was not sent", rb.calls)
	}
	s.unwant("ch")
	rb.fail = true
	s.apply(context.Background()) // fails: retried
	rb.fail = false
	s.apply(context.Background())
	if got := rb.calls[len(rb.calls)-1]; got != "-ch" || s.count() != 0 {
		t.Fatalf("calls %v, count %d: a failed unsubscribe was not retried", rb.calls, s.count())
	}
}

type recordingBroker struct {
	broker.Broker
	fail  bool
	calls []string
}

func (b *recordingBroker) change(sign string, chans []string) error {
	for _, ch := range chans {
		b.calls = append(b.calls, sign+ch)
	}
	if b.fail {
		return errors.New("unavailable")
	}
	return nil
}
func (b *recordingBroker) Subscribe(_ context.Context, chans ...string) error {
	return b.change("+", chans)
}
func (b *recordingBroker) Unsubscribe(_ context.Context, chans ...string) error {
	return b.change("-", chans)
}

package helper

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// countingFailingBroker refuses every change, as the Redis broker does while
// its subscription connection is being rebuilt (ErrUnavailable), and counts
// the calls.
type countingFailingBroker struct {
	failingBroker
	calls, channels atomic.Int64
}

func (b *countingFailingBroker) Subscribe(_ context.Context, chans ...string) error {
	b.calls.Add(1)
	b.channels.Add(int64(len(chans)))
	return fmt.Errorf("redisbroker: subscription connection unavailable")
}

func (b *countingFailingBroker) Unsubscribe(_ context.Context, chans ...string) error {
	b.calls.Add(1)
	b.channels.Add(int64(len(chans)))
	return fmt.Errorf("redisbroker: subscription connection unavailable")
}

// While the broker refuses changes (Redis away), they are tried once a
// second, not at every change, and warned of once a second. A soak run
// found each instance logging 800-1300 warnings in a 3 s outage, one per
// join, leave and login, each re-sending every channel still pending: the
// work grew with the square of the changes made during the outage.
//
// Here: 2 s of an unavailable broker with a change every 10 ms (200
// changes): a line a second gives 2-3 warnings, a try a second 2-3 calls
// per direction.
func TestSubscriptionRetriesArePacedAndQuiet(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	b := &countingFailingBroker{}
	s := newSubscriptions(b, zap.New(core))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.run(ctx) }()
	for i := 0; i < 200; i++ {
		if i%2 == 0 {
			s.want(fmt.Sprintf("ws:room:r%d", i))
		} else {
			s.unwant(fmt.Sprintf("ws:room:r%d", i-1))
			s.want(fmt.Sprintf("ws:client:c%d", i))
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	n := logs.FilterMessage("broker subscription change failed; will retry").Len()
	t.Logf("warnings: %d, broker calls: %d, channels sent: %d", n, b.calls.Load(), b.channels.Load())
	if n == 0 {
		t.Error("no warning at all during the outage")
	}
	if n > 10 {
		t.Errorf("%d warnings in 2 s of a broker outage (one per audience change): the failure log is not throttled", n)
	}
	if c := b.channels.Load(); c > 2000 {
		t.Errorf("%d channels sent to a failing broker for 200 changes: every change re-sends the whole pending set at once, ignoring the 1 s retry", c)
	}
}

package redisbroker

import (
	"context"
	"time"
)

// SetRenewMin sets the peak of channels from which b renews its session
// once they fall to a quarter of it (minRenew otherwise), so that tests
// need not hold thousands. Call it before Start.
func SetRenewMin(b *Broker, n int) { b.renewMin = n }

// SetBeforeMarker makes every renewal of b call f just before it
// publishes its marker. Call it before Start.
func SetBeforeMarker(b *Broker, f func()) { b.beforeMarker = f }

// FillChecks takes every slot of b's runner for connection checks (and
// renewal markers) until release is closed, and returns once it holds
// them all.
func FillChecks(b *Broker, release <-chan struct{}) {
	for range checkSlots {
		go b.checks.Run(context.Background(), func(context.Context) error { <-release; return nil })
	}
	for b.checks.Running() < checkSlots {
		time.Sleep(time.Millisecond)
	}
}

// Slot is the Redis Cluster hash slot of a channel name.
func Slot(ch string) int { return slot(ch) }

// HoldOp takes b's subscription-change lock, as a reconnect or a renewal
// does for as long as it subscribes the new session; the
// returned func gives it back.
func HoldOp(b *Broker) (release func()) {
	b.op <- struct{}{}
	return func() { <-b.op }
}

// SetAfterSnapshot makes every connect of b call f just after it has taken
// the set of channels for its new session. Call it before Start.
func SetAfterSnapshot(b *Broker, f func()) { b.afterSnapshot = f }

// SetRefusedRetry sets how often b subscribes again the channels Redis
// refused (a minute otherwise). Call it before Start.
func SetRefusedRetry(b *Broker, d time.Duration) { b.refusedRetry = d }

package helper

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/internal/logthrottle"
	"go.uber.org/zap"
)

// subscriptions turns the registry's audience changes into broker
// Subscribe/Unsubscribe calls. Changes are recorded without I/O (they happen
// under the registry lock) and applied by one goroutine in batches, so a
// burst of joins costs one round trip, and a subscribe followed by an
// unsubscribe of the same channel before the batch runs costs none.
type subscriptions struct {
	broker broker.Broker
	log    *zap.Logger
	// off: the broker delivers every channel anyway (broker.Firehose), so
	// there is nothing to follow.
	off bool

	mu    sync.Mutex
	dirty map[string]bool // channel → wanted, changes not yet sent
	// retried holds the channels of dirty that are there because sending
	// them failed, not because they changed since (forgetUnsubscribes).
	retried map[string]struct{}
	// Every change is sent as it is, with no record of what the broker
	// holds: the registry asks only when a channel's local audience
	// appears or empties, so a redundant call is rare (a flip within one
	// batch), and a subscribe of a channel held or an unsubscribe of one
	// not held does nothing. A record would cost a map entry per channel,
	// three per connection in audience mode, and it went wrong after a
	// failed call, which may or may not have taken effect in the broker
	// (the Redis broker keeps the change and applies it on reconnect).
	wanted  int    // channels wanted now: the registry's subscribes less its unsubscribes
	gen     uint64 // bumped by every change
	applied uint64 // the gen whose changes are all applied
	settled chan struct{}
	kick    chan struct{}
	// stopped is closed when run returns: nothing will be applied any
	// more, so sync stops waiting (a login racing Shutdown would otherwise
	// hold Shutdown for the whole SubscribeTimeout).
	stopped chan struct{}
	// failLog keeps the warnings of failed changes to one a second.
	failLog logthrottle.Throttle
}

func newSubscriptions(b broker.Broker, log *zap.Logger) *subscriptions {
	f, ok := b.(broker.Firehose)
	return &subscriptions{
		off:     ok && f.ReceivesAll(),
		broker:  b,
		log:     log,
		dirty:   make(map[string]bool),
		settled: make(chan struct{}),
		kick:    make(chan struct{}, 1),
		stopped: make(chan struct{}),
	}
}

func (s *subscriptions) want(ch string)   { s.mark(ch, true) }
func (s *subscriptions) unwant(ch string) { s.mark(ch, false) }

func (s *subscriptions) mark(ch string, wanted bool) {
	if s.off {
		return
	}
	s.mu.Lock()
	s.dirty[ch] = wanted
	if len(s.retried) > 0 {
		delete(s.retried, ch)
	}
	if wanted {
		s.wanted++
	} else {
		s.wanted--
	}
	s.gen++
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// run applies changes until ctx ends. After a failure (Redis away) it
// does not try at every change: changes wait for the next try, 100 ms
// after the failure, doubling to 1 s while the failures go on, and are
// then sent together. So a login during an outage waits at most that long
// for `connected` (a failed change counts as done), and one just after
// Redis is back gets it once its channels are subscribed. Tried at every
// change, an outage cost a broker call and a warning per join, leave and
// login, each re-sending every channel still pending (a soak run: 300
// warnings a second, and growing).
func (s *subscriptions) run(ctx context.Context) {
	defer close(s.stopped)
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	failing := false
	pause := subscriptionRetryMin
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
			if failing {
				continue // the retry, already armed, takes it
			}
		case <-retry.C:
		}
		failing = !s.apply(ctx)
		if !failing {
			pause = subscriptionRetryMin
			continue
		}
		retry.Reset(pause)
		pause = min(2*pause, subscriptionRetryMax)
	}
}

// subscriptionRetryMin and subscriptionRetryMax bound the pause between
// tries of failed changes.
const (
	subscriptionRetryMin = 100 * time.Millisecond
	subscriptionRetryMax = time.Second
)

// apply makes one batch of changes; false if some must be retried.
func (s *subscriptions) apply(ctx context.Context) bool {
	s.mu.Lock()
	gen := s.gen
	var sub, unsub []string
	for ch, wanted := range s.dirty {
		if wanted {
			sub = append(sub, ch)
		} else {
			unsub = append(unsub, ch)
		}
	}
	// A storm of connections leaves a batch of tens of thousands: start
	// afresh rather than keep a table that size for good.
	if len(s.dirty) > 1024 {
		s.dirty = make(map[string]bool)
	} else {
		clear(s.dirty)
	}
	s.retried = nil
	s.mu.Unlock()

	ok := true
	const batch = 512
	call := func(chans []string, f func(context.Context, ...string) error, wanted bool) {
		for len(chans) > 0 {
			n := min(batch, len(chans))
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := f(cctx, chans[:n]...)
			cancel()
			if err != nil {
				// A change the broker kept (the Redis broker while it
				// reconnects) is not sent again: it applies it once back.
				// The pace of the tries still slows (ok false), so that an
				// outage costs a call a second, not one per change.
				kept := errors.Is(err, broker.ErrChangeKept)
				if !kept {
					s.mu.Lock()
					for _, ch := range chans[:n] {
						if _, changed := s.dirty[ch]; !changed {
							s.dirty[ch] = wanted // retry unless overridden since
							if s.retried == nil {
								s.retried = make(map[string]struct{})
							}
							s.retried[ch] = struct{}{}
						}
					}
					s.mu.Unlock()
				}
				ok = false
				if ctx.Err() == nil { // not the helper shutting down
					if warn, held := s.failLog.Allow(); warn {
						msg := "broker subscription change failed; will retry"
						if kept {
							msg = "broker kept subscription changes it could not apply now (Redis unreachable, or channels refused: the broker's own warning names them); it applies them itself"
						}
						s.log.Warn(msg, zap.Bool("subscribe", wanted), zap.Int("channels", n), zap.Error(err), zap.Uint64("suppressed", held))
					}
				}
			}
			chans = chans[n:]
		}
	}
	call(sub, s.broker.Subscribe, true)
	call(unsub, s.broker.Unsubscribe, false)

	s.mu.Lock()
	if !ok {
		s.forgetUnsubscribes()
	}
	if gen > s.applied {
		s.applied = gen
		close(s.settled)
		s.settled = make(chan struct{})
	}
	s.mu.Unlock()
	return ok
}

// maxHeldUnsubscribes caps the unsubscribes kept for retry after they
// failed, while the broker fails without keeping them (a broker of the
// app's own; the Redis broker keeps what it could not send, see
// broker.ErrChangeKept). The subscribes held are bounded by the audience
// (a channel no longer wanted is marked so), but every channel joined and
// left during such an outage would stay as an unsubscribe: a client
// joining and leaving fresh names grew the table by 256 per two messages
// for as long as it lasted (found in a security audit), and each retry
// re-sent all of it.
const maxHeldUnsubscribes = 1024

// forgetUnsubscribes drops, once there are more than maxHeldUnsubscribes,
// the unsubscribes held because sending them failed. Changes made since,
// not sent yet, are all kept (dropping those left the broker subscribed
// for good; found in review). A broker that kept a dropped channel
// delivers messages for it that reach no local client. The caller holds
// s.mu.
func (s *subscriptions) forgetUnsubscribes() {
	n := 0
	for ch := range s.retried {
		if !s.dirty[ch] {
			n++
		}
	}
	if n <= maxHeldUnsubscribes {
		return
	}
	for ch := range s.retried {
		if !s.dirty[ch] {
			delete(s.dirty, ch)
			delete(s.retried, ch)
		}
	}
	s.log.Debug("unsubscribes held for retry dropped", zap.Int("channels", n))
}

// errSubscriptionsStopped: the helper is shutting down.
var errSubscriptionsStopped = errors.New("subscription changes stopped")

// sync waits until every change recorded before the call has been applied
// (or attempted), or ctx ends.
func (s *subscriptions) sync(ctx context.Context) error {
	s.mu.Lock()
	target := s.gen
	for s.applied < target {
		ch := s.settled
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.stopped:
			return errSubscriptionsStopped
		}
		s.mu.Lock()
	}
	s.mu.Unlock()
	return nil
}

// upToDate reports whether every change asked for so far is applied.
func (s *subscriptions) upToDate() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied >= s.gen
}

func (s *subscriptions) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wanted
}

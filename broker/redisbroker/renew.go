package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Renewal: go-redis keeps each PubSub's channels in a map of its own, to
// subscribe them again on a reconnect of its own, and a Go map never gives
// back the table of its peak. After a crowd has gone, the subscription
// connection would keep a table sized for it (about 36 bytes per channel
// of the peak, three channels per connection in ModeAudience) for as long
// as Redis stays up. So once the channels held fall to a quarter of their
// peak since the session began, the broker replaces the session with a
// fresh one, without losing or repeating a message:
//
//  1. the successor subscribes to the channels held and to the
//     predecessor's probe channel, and delivers nothing yet;
//  2. the broker publishes a marker on the predecessor's probe channel;
//  3. the predecessor delivers what it reads before the marker and nothing
//     after it; the successor, from the marker on, once the predecessor
//     has read the marker.
//
// One server orders all publishes and every subscriber reads them in that
// order, so a message published before the marker reaches the predecessor
// before it (and the successor too, if subscribed by then, before it), and
// one published after it reaches both after it: each is delivered once,
// and each channel keeps its order. Subscription changes wait meanwhile
// (op is held), so both sessions hold the same channels.
//
// That order holds on one server, so renewal is for a single node and
// Sentinel only: on a cluster, classic publishes reach a subscriber through
// the cluster bus from the node that took them, and two connections on two
// nodes may read them in different orders. ModePattern is left out too: its
// connection holds patterns, and its channels (ws:broadcast) do not grow.

// minRenew is the smallest peak of channels for which a session is
// renewed: below it the table is too small to be worth a new connection.
const minRenew = 4096

// handover is a session's part in a renewal.
type handover struct {
	channel, marker string        // where the marker comes, and its payload
	reached         chan struct{} // closed once the session read the marker
	// For the successor: the predecessor's part and session, and passed,
	// closed when it delivers from the marker on. Nil for the predecessor.
	pred     *handover
	predSess *session
	passed   chan struct{}
}

// renewable reports whether sessions may be renewed (see above).
func (b *Broker) renewable() bool { return b.onCluster == nil && b.opts.Mode != ModePattern }

// noteHeld follows the peak of channels held since the live session
// began, and asks supervise for a renewal once they have fallen to a
// quarter of it; b.mu is held.
func (b *Broker) noteHeld() {
	n := len(b.want)
	if n > b.heldPeak {
		b.heldPeak = n
		return
	}
	if b.heldPeak < b.renewMin || n > b.heldPeak/4 || b.sess == nil || !b.renewable() {
		return
	}
	select {
	case b.renewCh <- struct{}{}:
	default: // one is pending
	}
}

// renew replaces old, the live session, by a fresh one (see above). A
// renewal that fails leaves old as it was, unless old had already read the
// marker and stopped delivering: then old is failed, and supervise
// rebuilds the session as after any loss. Either way the next attempt
// waits for the channels to fall to a quarter again.
func (b *Broker) renew(ctx context.Context, old *session) {
	err := b.handOver(ctx, old)
	if err != nil && ctx.Err() == nil {
		b.log.Warn("subscription renewal failed", zap.Error(err))
	}
}

func (b *Broker) handOver(ctx context.Context, old *session) error {
	if err := b.lockOp(ctx); err != nil {
		return err
	}
	defer b.unlockOp()
	b.mu.Lock()
	if b.closed || b.sess != old || old.cause() != nil || !b.renewable() {
		b.mu.Unlock()
		return nil // supervise deals with a lost session
	}
	if b.heldPeak < b.renewMin || len(b.want) > b.heldPeak/4 {
		b.mu.Unlock()
		return nil // a request left over from before a reconnect or a renewal
	}
	chans := make([]string, 0, len(b.want)+1)
	for ch := range b.want {
		chans = append(chans, ch)
	}
	b.mu.Unlock()

	n := b.newSession()
	// Named after the successor's own probe channel, which is random.
	marker := probeEnvelope(old.probeCh, strconv.Quote("renewal-"+strings.TrimPrefix(n.probeCh, probePrefix)))
	oh := &handover{channel: old.probeCh, marker: marker, reached: make(chan struct{})}
	nh := &handover{channel: old.probeCh, marker: marker, reached: make(chan struct{}),
		pred: oh, predSess: old, passed: make(chan struct{})}
	n.mute.Store(true)
	n.ho.Store(nh)
	held := len(chans)
	chans = append(chans, old.probeCh)
	sctx, cancel := context.WithTimeout(ctx, b.opts.PingTimeout+time.Duration(len(chans)/1000+1)*time.Second)
	defer cancel()
	go func() { // supervise is waiting: a lost old session ends the attempt
		select {
		case <-old.dead:
			cancel()
		case <-sctx.Done():
		}
	}()
	if err := n.init(sctx, chans); err != nil {
		n.close()
		b.giveUp(held)
		return fmt.Errorf("subscribe the new session: %w", err)
	}

	if b.beforeMarker != nil {
		b.beforeMarker()
	}
	old.ho.Store(oh)
	err := b.publishMarker(ctx, old.probeCh, marker)
	if err == nil {
		t := time.NewTimer(b.opts.PingTimeout)
		select {
		case <-nh.passed:
		case <-n.dead:
			err = n.cause()
		case <-old.dead:
			err = fmt.Errorf("the session it replaces: %w", old.cause())
		case <-t.C:
			err = fmt.Errorf("the marker did not reach both sessions within %v", b.opts.PingTimeout)
		case <-ctx.Done():
			err = ctx.Err()
		}
		t.Stop()
		select {
		case <-nh.passed:
			err = nil // whatever else happened meanwhile, the successor has taken over
		default:
		}
	}
	if err != nil {
		n.close() // mute unless old has read the marker: nothing lost with it
		if old.ho.CompareAndSwap(oh, nil) {
			// old has not read the marker, and now never acts on it: it
			// goes on delivering everything, as if nothing had been tried.
			b.giveUp(held)
			return err
		}
		old.fail(fmt.Errorf("renewal: %w", err))
		return err
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		n.close()
		return nil
	}
	b.sess = n
	b.heldPeak = held
	b.mu.Unlock()
	old.close()
	b.stats.sessions.Add(1)
	// The predecessor's probe channel was only there for the marker, and
	// nothing else comes on it: left subscribed if this fails.
	uctx, ucancel := context.WithTimeout(ctx, b.opts.PingTimeout)
	err = n.apply(uctx, false, []string{old.probeCh})
	ucancel()
	b.stats.renewals.Add(1) // counted once Redis holds what it will hold
	if err != nil {
		return fmt.Errorf("renewed, but unsubscribe the marker's channel: %w", err)
	}
	b.log.Debug("subscription session renewed", zap.Int("channels", held))
	return nil
}

// giveUp makes a failed renewal wait for the channels held to fall to a
// quarter again, of what they were at the attempt, rather than try again
// on every change.
func (b *Broker) giveUp(held int) {
	b.mu.Lock()
	b.heldPeak = max(held, len(b.want))
	b.mu.Unlock()
}

// publishCheck publishes payload to ch, a probe channel, through the
// runner for checks, and returns how many subscribers received it.
func (b *Broker) publishCheck(ctx context.Context, ch, payload string) (receivers int64, err error) {
	err = b.checks.Run(ctx, func(ctx context.Context) error {
		var err error
		if b.opts.Mode == ModeSharded {
			receivers, err = b.client.SPublish(ctx, ch, payload).Result()
		} else {
			receivers, err = b.client.Publish(ctx, ch, payload).Result()
		}
		return err
	})
	return receivers, err
}

// publishMarker publishes the renewal marker, which both sessions must
// receive.
func (b *Broker) publishMarker(ctx context.Context, ch, marker string) error {
	ctx, cancel := context.WithTimeout(ctx, b.opts.PingTimeout)
	defer cancel()
	receivers, err := b.publishCheck(ctx, ch, marker)
	if err != nil {
		return fmt.Errorf("publish the marker: %w", err)
	}
	// A sanity check only (instances in ModePattern count too); the wait
	// for the successor to take over is what proves the marker arrived.
	if receivers < 2 {
		return fmt.Errorf("the marker reached %d subscribers, not both sessions", receivers)
	}
	return nil
}

// passMarker is the read loop's part when the marker arrives: the
// predecessor stops delivering; the successor starts, once the predecessor
// has delivered everything before the marker. Until then the successor's
// read loop waits, which holds its messages in order behind the marker.
func (c *conn) passMarker(h *handover) {
	s := c.s
	if !s.ho.CompareAndSwap(h, nil) {
		return // the renewal gave up and took the marker back (see handOver)
	}
	if h.pred == nil {
		s.mute.Store(true)
		close(h.reached)
		return
	}
	close(h.reached)
	t := time.NewTimer(s.b.opts.PingTimeout)
	defer t.Stop()
	var err error
	select {
	case <-h.pred.reached:
	case <-s.dead:
		return
	case <-h.predSess.dead:
		err = errors.New("renewal: the session it replaces was lost before the marker")
	case <-t.C:
		err = fmt.Errorf("renewal: the session it replaces did not read the marker within %v", s.b.opts.PingTimeout)
	}
	select {
	case <-h.pred.reached: // it did, whatever else happened meanwhile
	default:
		s.fail(err)
		return
	}
	s.mute.Store(false)
	close(h.passed)
}

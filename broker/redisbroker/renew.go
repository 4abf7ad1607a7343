package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Renewal: go-redis keeps each PubSub's channels in a map of its own, to
// subscribe them again on a reconnect of its own, and a Go map never gives
// back the table of its peak. After a crowd has gone, the subscription
// connection would keep a table sized for it (about 36 bytes per channel
// of the peak, three channels per connection in ModeAudience) for as long
// as Redis stays up. So once the channels held fall to a quarter of their
// peak since the session began, the broker replaces the session with a
// fresh one, without losing or repeating a message. For each connection
// of the old session (one, or one per cluster master in ModeSharded):
//
//  1. the successor's connection to the same server subscribes to the
//     channels held there and to a marker channel the old one holds (its
//     probe channel; on a cluster, a channel of that node's slots, which
//     the old connection subscribes first), and delivers nothing yet;
//  2. the broker publishes a marker on the marker channel;
//  3. the old connection delivers what it reads before the marker and
//     nothing after it; the new one, from the marker on, once the old one
//     has read the marker.
//
// One server orders all the publishes its subscribers read, and each
// subscriber reads them in that order, so a message published before the
// marker reaches the old connection before it (and the new one too, if
// subscribed by then, before it), and one published after it reaches both
// after it: each is delivered once, and each channel keeps its order. On a
// cluster in ModeSharded a channel's publishes go to the node that owns
// its slot only, and that node orders them with its marker. Subscription
// changes wait meanwhile (op is held), so both sessions hold the same
// channels. Marker channels are subscribed on the connection to their node
// directly, not by the client's view of the slots, and each marker is
// published through its node's own client, so a view that changes
// meanwhile cannot put a marker where its old connection does not read.
// In ModeSharded, an old connection to a node that is no longer a master
// is not handed over: Redis unsubscribed everything it held there.
//
// Classic pub/sub on a cluster (ModeAudience) brings every publish to a
// subscriber through the cluster bus from whichever node took it, and two
// nodes may forward them in different orders; but one node delivers them
// to all its subscribers in one order. So the session's connection is
// opened on a node the broker picks, and the successor's on the same one,
// where the marker is published too (its subscriber count, which counts
// that node's subscribers only, must include both).
//
// Left out: ModePattern, whose connection holds patterns, and whose
// channels (ws:broadcast) do not grow.

// minRenew is the smallest peak of channels for which a session is
// renewed: below it the table is too small to be worth a new connection.
const minRenew = 4096

// handover is a connection's part in a renewal.
type handover struct {
	channel, marker string        // where the marker comes, and its payload
	reached         chan struct{} // closed once the connection read the marker
	// For the successor's connection: the predecessor's part and session,
	// and passed, closed when it delivers from the marker on. Nil for the
	// predecessor's.
	pred     *handover
	predSess *session
	passed   chan struct{}
}

// renewable reports whether sessions may be renewed (see above).
func (b *Broker) renewable() bool { return b.opts.Mode != ModePattern }

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
	held := len(chans)
	sctx, cancel := context.WithTimeout(ctx, b.opts.PingTimeout+time.Duration(len(chans)/1000+1)*time.Second)
	defer cancel()
	go func() { // supervise is waiting: a lost old session ends the attempt
		select {
		case <-old.dead:
			cancel()
		case <-sctx.Done():
		}
	}()

	// The old connections to hand over, and for each its marker channel
	// and the client of its server (nil: the broker's, one server).
	old.mu.Lock()
	olds := make(map[string]*conn, len(old.conns))
	for node, c := range old.conns {
		olds[node] = c
	}
	old.mu.Unlock()
	markerCh := make(map[string]string, len(olds))
	via := make(map[string]*redis.Client, len(olds))
	var pin *redis.Client // classic pub/sub on a cluster: old's node
	if b.cluster == nil {
		markerCh[""] = old.probeCh // old holds it already
		old.mu.Lock()
		pin = old.node
		old.mu.Unlock()
		if pin == nil && b.onCluster != nil {
			// Cannot be (init opens the connection, which picks the
			// node), and without it the successor would pick its own.
			b.giveUp(held)
			return errors.New("the old session's node is unknown")
		}
	} else {
		masters, err := b.masters(sctx)
		if err != nil {
			b.giveUp(held)
			return err
		}
		for node := range olds {
			if masters[node] == nil {
				// No longer a master (a failover left it a replica):
				// Redis unsubscribed every sharded channel of the slots
				// it lost, so nothing held comes that way.
				delete(olds, node)
				continue
			}
			if markerCh[node], err = b.markerChannel(sctx, node); err != nil {
				b.giveUp(held)
				return err
			}
			via[node] = masters[node]
		}
	}
	// untouched ends a failed attempt whose markers old has not read.
	untouched := func() {
		uctx, ucancel := context.WithTimeout(ctx, b.opts.PingTimeout)
		if b.cluster != nil { // old's own probe channel stays, of course
			_ = old.subscribeEach(uctx, false, markerCh, nil)
		}
		// old goes on: what left the set meanwhile leaves it (found in
		// review); it holds chans, as the turn has been held since.
		_ = b.leaveGone(uctx, old, chans)
		ucancel()
		b.giveUp(held)
	}
	if b.cluster != nil {
		if err := old.subscribeEach(sctx, true, markerCh, nil); err != nil {
			untouched()
			return fmt.Errorf("subscribe the old session to the markers: %w", err)
		}
	}

	// The new session: muted, each connection waiting for its node's
	// marker; the marker channels subscribed on the connection to each
	// node directly, whatever the client's view of the slots says.
	n := b.newSession()
	n.node = pin // the same node: there, both read the publishes in one order
	id := strconv.Quote("renewal-" + strings.TrimPrefix(probeChannel(), probePrefix))
	oh := make(map[string]*handover, len(olds))
	n.handovers = make(map[string]*handover, len(olds))
	for node, ch := range markerCh {
		marker := probeEnvelope(ch, id)
		oh[node] = &handover{channel: ch, marker: marker, reached: make(chan struct{})}
		n.handovers[node] = &handover{channel: ch, marker: marker, reached: make(chan struct{}),
			pred: oh[node], predSess: old, passed: make(chan struct{})}
	}
	defer func() { // over, whatever the outcome: later connections deliver at once
		n.mu.Lock()
		n.handovers = nil
		n.mu.Unlock()
	}()
	err := n.init(sctx, chans)
	if err == nil {
		err = n.subscribeEach(sctx, true, markerCh, via)
	}
	if err == nil {
		// Every connection of n must have a predecessor on its node, or
		// what it receives would have nobody to take it over from.
		n.mu.Lock()
		for node := range n.conns {
			if olds[node] == nil {
				err = fmt.Errorf("the new session has a connection to %s, which the old one has not", node)
			}
		}
		n.mu.Unlock()
	}
	if err != nil {
		n.close()
		untouched()
		return fmt.Errorf("subscribe the new session: %w", err)
	}

	if b.beforeMarker != nil {
		b.beforeMarker()
	}
	for node, c := range olds {
		c.ho.Store(oh[node])
	}
	for node, h := range oh {
		var pub redis.Cmdable = b.client
		switch {
		case via[node] != nil:
			pub = via[node] // a moved slot answers MOVED, before any marker is read
		case pin != nil:
			pub = pin // where both connections are
		}
		if err = b.publishMarker(ctx, pub, h.channel, h.marker); err != nil {
			err = fmt.Errorf("%s: %w", nodeName(node), err)
			break
		}
	}
	if err == nil {
		t := time.NewTimer(b.opts.PingTimeout)
	wait:
		for _, h := range n.handovers {
			select {
			case <-h.passed:
			case <-n.dead:
				err = n.cause()
				break wait
			case <-old.dead:
				err = fmt.Errorf("the session it replaces: %w", old.cause())
				break wait
			case <-t.C:
				err = fmt.Errorf("the markers did not reach both sessions within %v", b.opts.PingTimeout)
				break wait
			case <-ctx.Done():
				err = ctx.Err()
				break wait
			}
		}
		t.Stop()
		if err != nil && allPassed(n.handovers) {
			err = nil // whatever else happened meanwhile, the successor has taken over
		}
	}
	if err != nil {
		n.close() // mute where old has not read the marker: nothing lost with it
		read := false
		for node, c := range olds {
			if !c.ho.CompareAndSwap(oh[node], nil) {
				read = true // that connection stopped delivering at its marker
			}
		}
		if !read {
			// old has read no marker, and now never acts on one: it goes on
			// delivering everything, as if nothing had been tried.
			untouched()
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
	// The marker channels were only there for the markers, and nothing
	// else comes on them: left subscribed if this fails.
	n.mu.Lock()
	n.handovers = nil // over: a connection made from here on delivers at once
	n.mu.Unlock()
	uctx, ucancel := context.WithTimeout(ctx, b.opts.PingTimeout)
	err = n.subscribeEach(uctx, false, markerCh, nil)
	if err != nil {
		err = fmt.Errorf("unsubscribe the markers' channels: %w", err)
	}
	if gerr := b.leaveGone(uctx, n, chans); err == nil {
		err = gerr // left subscribed if this fails: messages for nobody here, until the next session
	}
	ucancel()
	b.stats.renewals.Add(1) // counted once Redis holds what it will hold
	if err != nil {
		return fmt.Errorf("renewed, but %w", err)
	}
	b.log.Debug("subscription session renewed", zap.Int("channels", held))
	return nil
}

// subscribeEach (un)subscribes the connection to each node of chans to
// that node's channel, directly rather than by the client's view of the
// slots, and waits for Redis to confirm. via gives the client of a node
// to which s has no connection yet; without it, a missing connection is
// an error.
func (s *session) subscribeEach(ctx context.Context, add bool, chans map[string]string, via map[string]*redis.Client) error {
	wctx := context.WithoutCancel(ctx) // see apply
	conns := make([]*conn, 0, len(chans))
	for node, ch := range chans {
		s.mu.Lock()
		c := s.conns[node]
		s.mu.Unlock()
		if c == nil {
			if via[node] == nil {
				return fmt.Errorf("no connection %s", nodeName(node))
			}
			var err error
			if c, err = s.connFor(ctx, node, via[node]); err != nil {
				return err
			}
		}
		if err := c.send(wctx, add, []string{ch}); err != nil {
			c.fail(err) // the session's, but for a perNode one
			return err
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		if err := c.barrier(ctx); err != nil {
			return err
		}
	}
	return nil
}

// allPassed reports whether every successor connection has taken over.
func allPassed(hs map[string]*handover) bool {
	for _, h := range hs {
		select {
		case <-h.passed:
		default:
			return false
		}
	}
	return true
}

// masters returns a client for each master of the cluster, by address,
// as the client sees them once it has fetched the slot map again
// (ForEachMaster does, and waits for it; if no node answers, it keeps the
// map it had).
func (b *Broker) masters(ctx context.Context) (map[string]*redis.Client, error) {
	var mu sync.Mutex
	out := make(map[string]*redis.Client)
	err := b.checks.Run(ctx, func(ctx context.Context) error {
		return b.cluster.ForEachMaster(ctx, func(_ context.Context, c *redis.Client) error {
			mu.Lock()
			out[c.Options().Addr] = c
			mu.Unlock()
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list the cluster's masters: %w", err)
	}
	return out, nil
}

// markerChannel finds a probe channel whose slot node serves, for a
// renewal's marker on a cluster in ModeSharded.
func (b *Broker) markerChannel(ctx context.Context, node string) (string, error) {
	for range 1000 { // one in (masters) hits; 1000 misses in a row means node is not a master
		ch := probeChannel()
		nc, err := b.cluster.MasterForKey(ctx, ch)
		if err != nil {
			return "", fmt.Errorf("find a marker channel for %s: %w", node, err)
		}
		if nc.Options().Addr == node {
			return ch, nil
		}
	}
	return "", fmt.Errorf("find a marker channel for %s: no slot of it found; not a master any more", node)
}

// giveUp makes a failed renewal wait for the channels held to fall to a
// quarter again, of what they were at the attempt, rather than try again
// on every change.
func (b *Broker) giveUp(held int) {
	b.mu.Lock()
	b.heldPeak = max(held, len(b.want))
	b.mu.Unlock()
}

// publishCheck publishes payload to ch, a probe channel, through via and
// the runner for checks, and returns how many subscribers received it.
func (b *Broker) publishCheck(ctx context.Context, via redis.Cmdable, ch, payload string) (int64, error) {
	var receivers int64
	err := b.checks.Run(ctx, func(ctx context.Context) error {
		var err error
		if b.opts.Mode == ModeSharded {
			receivers, err = via.SPublish(ctx, ch, payload).Result()
		} else {
			receivers, err = via.Publish(ctx, ch, payload).Result()
		}
		return err
	})
	if err != nil {
		// Maybe given up on while the command runs on: receivers is
		// its to write, not to be read here.
		return 0, err
	}
	return receivers, nil
}

// publishMarker publishes the renewal marker, which both sessions must
// receive.
func (b *Broker) publishMarker(ctx context.Context, via redis.Cmdable, ch, marker string) error {
	ctx, cancel := context.WithTimeout(ctx, b.opts.PingTimeout)
	defer cancel()
	receivers, err := b.publishCheck(ctx, via, ch, marker)
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
	if !c.ho.CompareAndSwap(h, nil) {
		return // the renewal gave up and took the marker back (see handOver)
	}
	if h.pred == nil {
		c.mute.Store(true)
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
	c.mute.Store(false)
	close(h.passed)
}

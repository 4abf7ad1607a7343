package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Repair: in ModeSharded on a cluster the session holds one connection per
// master, and the masters fail, pause, fail over and give slots away one
// by one. So a fault touches only its own shard (see session.perNode): a
// lost connection is closed alone (which releases whatever Redis held for
// it), a channel Redis unsubscribed because its slot moved is forgotten
// alone, and the supervisor then mends the session, with backoff, until
// every channel held is subscribed on the master that owns its slot:
//
//  1. the slot map is fetched again, synchronously: go-redis's ReloadState
//     only schedules a reload, and a rebuild right after a failover then
//     subscribed on the old master, by then a replica of the same shard,
//     which takes SSUBSCRIBE and hears the shard's messages, but where no
//     unsubscribe ever went (found in a cluster trial: every message of
//     such a channel arrived twice once it was subscribed again);
//  2. a connection to a node that is no longer a master, by that map or by
//     the node's own answer to HELLO, is closed;
//  3. channels held on a node that no longer owns their slot, or no longer
//     wanted, are unsubscribed there;
//  4. channels held nowhere are subscribed on their owner, each master on
//     its own, after it has said it is a master (connFor), so a shard still
//     down or a map still stale leaves only its own channels for the next
//     round.

// mend repairs s until a round finds nothing missing, or s or ctx ends.
func (b *Broker) mend(ctx context.Context, s *session) {
	backoff := b.opts.ReconnectBackoffMin
	began := time.Now()
	var failed int
	var logged time.Time
	for {
		// A moment first: a failover or a slot move comes as a burst of
		// notices, which one round then takes together.
		select {
		case <-ctx.Done():
			return
		case <-s.dead:
			return
		case <-time.After(jitter(backoff)):
		}
		select {
		case <-s.repairs: // this round takes whatever was asked meanwhile
		default:
		}
		restored, err := b.repair(ctx, s)
		if err == nil {
			if restored > 0 {
				b.restored(time.Since(began))
				b.log.Info("sharded subscriptions restored", zap.Int("channels", restored),
					zap.Duration("after", time.Since(began).Round(time.Millisecond)), zap.Int("failedAttempts", failed))
			}
			return
		}
		if ctx.Err() != nil || s.cause() != nil {
			return
		}
		failed++
		if failed == 1 || time.Since(logged) >= reconnectLogEvery {
			logged = time.Now()
			b.log.Warn("sharded resubscription failed; retrying", zap.Error(err), zap.Int("failedAttempts", failed),
				zap.Duration("since", time.Since(began).Round(time.Millisecond)))
		}
		backoff = min(2*backoff, b.opts.ReconnectBackoffMax)
	}
}

// repair runs one round (see above) and returns how many channels it
// subscribed again. An error leaves the rest for the next round.
func (b *Broker) repair(ctx context.Context, s *session) (int, error) {
	if err := b.lockOp(ctx); err != nil {
		return 0, err
	}
	defer b.unlockOp()
	b.mu.Lock()
	if b.closed || b.sess != s {
		b.mu.Unlock()
		return 0, nil // supervise deals with a lost session
	}
	want := make(map[string]struct{}, len(b.want))
	for ch := range b.want {
		if _, refused := b.refused[ch]; !refused { // retried apart (retryRefused)
			want[ch] = struct{}{}
		}
	}
	b.mu.Unlock()
	faults := s.faults.Load()
	rctx, cancel := context.WithTimeout(ctx, b.opts.PingTimeout+time.Duration(len(want)/1000+1)*time.Second)
	defer cancel()

	masters, err := b.masters(rctx) // reloads the slot map, and waits for it
	if err != nil {
		s.needRepair()
		return 0, err
	}
	b.dropDemoted(rctx, s, masters)
	missing, err := b.tidy(rctx, s, want)
	if err != nil {
		s.needRepair()
		return 0, err
	}
	restored, err := b.place(rctx, s, missing)
	if err != nil {
		s.needRepair()
		return restored, err
	}
	s.degraded.CompareAndSwap(true, s.faults.Load() != faults) // a fault meanwhile has its own round coming
	return restored, nil
}

// dropDemoted closes the session's connections to nodes that are no
// longer masters: by the slot map, or by their own word (the map may be
// stale still). A node that does not answer is left to its probe.
func (b *Broker) dropDemoted(ctx context.Context, s *session, masters map[string]*redis.Client) {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range conns {
		nc := masters[c.key]
		if nc == nil {
			c.fail(fmt.Errorf("%s is no longer a master", c.key))
			continue
		}
		wg.Go(func() {
			rctx, cancel := context.WithTimeout(ctx, b.opts.PingTimeout)
			defer cancel()
			if err := b.checks.Run(rctx, func(ctx context.Context) error { return isMaster(ctx, nc) }); errors.Is(err, errNotMaster) {
				c.fail(err)
			}
		})
	}
	wg.Wait()
}

// tidy unsubscribes, on each connection, the channels no longer wanted
// and those whose slot its node no longer owns by the current map, and
// returns the channels wanted that no connection holds where they live.
func (b *Broker) tidy(ctx context.Context, s *session, want map[string]struct{}) ([]string, error) {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	placed := make(map[string]struct{}, len(want))
	var errs []error
	for _, c := range conns {
		c.mu.Lock()
		held := make([]string, 0, len(c.chans))
		for ch := range c.chans {
			held = append(held, ch)
		}
		c.mu.Unlock()
		var leave []string
		for _, ch := range held {
			if _, ok := want[ch]; !ok {
				leave = append(leave, ch)
				continue
			}
			owner, err := b.cluster.MasterForKey(ctx, ch)
			if err != nil {
				return nil, fmt.Errorf("find the node of %s: %w", ch, err)
			}
			if owner.Options().Addr != c.key {
				leave = append(leave, ch)
				continue
			}
			placed[ch] = struct{}{}
		}
		if err := c.leave(ctx, leave); err != nil {
			errs = append(errs, err)
		}
	}
	var missing []string
	for ch := range want {
		if _, ok := placed[ch]; !ok {
			missing = append(missing, ch)
		}
	}
	return missing, errors.Join(errs...)
}

// leave unsubscribes chans from c, slot by slot, and waits for Redis.
func (c *conn) leave(ctx context.Context, chans []string) error {
	if len(chans) == 0 {
		return nil
	}
	bySlot := make(map[int][]string)
	for _, ch := range chans {
		bySlot[slot(ch)] = append(bySlot[slot(ch)], ch)
	}
	wctx := context.WithoutCancel(ctx) // see apply
	for _, group := range bySlot {
		if err := c.send(wctx, false, group); err != nil {
			c.fail(err)
			return fmt.Errorf("unsubscribe %d channels %s: %w", len(group), nodeName(c.key), err)
		}
		c.note(false, group)
	}
	if err := c.barrier(ctx); err != nil {
		return fmt.Errorf("unsubscribe %s: %w", nodeName(c.key), err)
	}
	return nil
}

// place subscribes chans where the slot map says they live, each master
// apart: one that fails leaves its channels missing, not the others'.
func (b *Broker) place(ctx context.Context, s *session, chans []string) (int, error) {
	byNode := make(map[string][]string)
	for _, ch := range chans {
		owner, err := b.cluster.MasterForKey(ctx, ch)
		if err != nil {
			return 0, fmt.Errorf("find the node of %s: %w", ch, err)
		}
		addr := owner.Options().Addr
		byNode[addr] = append(byNode[addr], ch)
	}
	var (
		mu       sync.Mutex
		restored int
		errs     []error
		wg       sync.WaitGroup
	)
	for node, group := range byNode {
		wg.Go(func() {
			err := s.apply(ctx, true, group)
			mu.Lock()
			defer mu.Unlock()
			var refused *refusedError
			if errors.As(err, &refused) {
				// The others are placed; the refused, noted, are
				// retried apart (retryRefused).
				restored += len(group) - len(refused.chans)
				return
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("subscribe %d channels on %s: %w", len(group), node, err))
				return
			}
			restored += len(group)
		})
	}
	wg.Wait()
	return restored, errors.Join(errs...)
}

// errNotMaster says a node answered HELLO with another role than master.
var errNotMaster = errors.New("not a master (the slot map is stale)")

// isMaster asks nc's node for its role, with HELLO: ROLE is an @admin
// command, which the documented ACL (connection and pub/sub commands
// only) refuses.
func isMaster(ctx context.Context, nc *redis.Client) error {
	role, err := helloField(ctx, nc, "role")
	if err != nil {
		return fmt.Errorf("ask for its role: %w", err)
	}
	if role != "master" {
		return fmt.Errorf("%s (role %v): %w", nc.Options().Addr, role, errNotMaster)
	}
	return nil
}

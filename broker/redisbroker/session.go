package redisbroker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxws/websocket/protocol"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// session is one generation of subscription connections: one connection,
// or one per cluster master in ModeSharded. With one connection, any
// failure (an error reply is none: see answered) kills the whole session
// and the supervisor builds the next one from the channels held. In ModeSharded on a cluster the connections are
// to independent shards, so a failure kills only its own connection (see
// perNode): the other masters keep delivering while the supervisor
// resubscribes the lost channels where the slot map, fetched again, says
// they live now (see Broker.repair).
type session struct {
	b    *Broker
	ctx  context.Context // cancelled by close
	born time.Time

	stop context.CancelFunc

	mu    sync.Mutex
	conns map[string]*conn // by node address ("" without a cluster)

	dead     chan struct{}
	deadOnce sync.Once
	err      error
	closed   atomic.Bool

	// probeCh is the session's own channel for loopback probes (see
	// watch); empty on a cluster in ModeSharded, whose connections are
	// probed with a PING only.
	probeCh string
	// soon asks watch for a probe now (see Broker.heardBy).
	soon chan struct{}

	// node is the server of the connection in ModeAudience on a cluster
	// (see connFor); guarded by mu.
	node *redis.Client

	// repairs asks supervise to mend the session: a connection of it was
	// lost, or channels it held were unsubscribed by Redis or could not
	// be subscribed (perNode only).
	repairs chan struct{}
	// degraded is set while channels held may lack their subscription
	// (perNode only), cleared by a repair that found none missing.
	degraded atomic.Bool
	faults   atomic.Uint64 // repairs asked for so far

	// handovers is set on a renewal's successor before it subscribes
	// anything: each connection it opens, to the node of the key, is
	// mute and waits for that handover's marker (see Broker.renew).
	handovers map[string]*handover
}

// perNode reports whether the session's connections live and fail one
// by one: ModeSharded on a cluster, one connection per master, which have
// nothing in common but this instance.
func (s *session) perNode() bool { return s.b.cluster != nil }

// needRepair asks supervise to mend the session (see Broker.repair).
func (s *session) needRepair() {
	s.faults.Add(1)
	s.degraded.Store(true)
	select {
	case s.repairs <- struct{}{}:
	default:
	}
}

// probeSoon asks for a probe of the session's connection without waiting
// for ProbeInterval of silence.
func (s *session) probeSoon() {
	select {
	case s.soon <- struct{}{}:
	default:
	}
}

// conn is one pub/sub connection and its read loop.
type conn struct {
	s   *session
	key string
	ps  *redis.PubSub

	mu      sync.Mutex
	waiters map[string]chan struct{} // barrier PING payload → waiter
	seq     atomic.Uint64

	born  time.Time    // the clock heard counts from (monotonic)
	heard atomic.Int64 // time since born at which a reply was last read

	// mute stops delivery: a successor's until the renewal marker, a
	// predecessor's from it on (see Broker.renew).
	mute atomic.Bool
	// ho is the connection's part in a renewal under way, nil otherwise.
	ho atomic.Pointer[handover]

	// chans are the channels subscribed here (perNode only; guarded by
	// mu): an unsubscribe goes where its channel is, whatever the slot map
	// says now, and a repair finds what is missing or misplaced.
	chans map[string]struct{}
	// lost is closed when the connection has failed (err says why); in a
	// perNode session it is dropped alone, otherwise with its session.
	lost     chan struct{}
	lostOnce sync.Once
	err      error

	// Error replies read, which leave the connection as it was (see
	// answered); guarded by mu. refusals counts an ACL's refusals of
	// channels (NOPERM), others every other one (BUSY, LOADING, ...).
	answers answerCount
	// woken are closed by the next error reply: a probe's PING answered
	// with one proves the connection alive, and a barrier gives up on a
	// Redis that answers with errors; guarded by mu.
	woken map[chan struct{}]struct{}
	// track holds the channels of an apply whose subscription Redis has
	// not confirmed yet (see apply); guarded by mu.
	track map[string]struct{}
}

// answerCount counts a connection's error replies; see conn.answers.
type answerCount struct {
	refusals, others       uint64
	lastRefusal, lastOther error
}

func (b *Broker) newSession() *session {
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{b: b, ctx: ctx, born: time.Now(), stop: cancel, conns: make(map[string]*conn), dead: make(chan struct{}),
		soon: make(chan struct{}, 1), repairs: make(chan struct{}, 1)}
	if b.cluster == nil {
		s.probeCh = probeChannel()
	}
	return s
}

// probePrefix names loopback-probe channels. It lies in the client
// channel namespace, which any Redis ACL written for this protocol lets a
// server use, and cannot clash with a client's channel: a client id is a
// UUID. Instances in ModePattern, ours and the original's, receive one
// another's probes through the client pattern and drop them (see probe).
const probePrefix = protocol.ChannelClientPrefix + "fxws-probe-"

func probeChannel() string {
	var id [8]byte
	_, _ = rand.Read(id[:])
	return probePrefix + hex.EncodeToString(id[:])
}

// fail marks the session dead; the first cause is kept.
func (s *session) fail(err error) {
	s.deadOnce.Do(func() {
		s.err = err
		close(s.dead)
	})
}

func (s *session) cause() error {
	select {
	case <-s.dead:
		return s.err
	default:
		return nil
	}
}

// close closes every connection; the read loops end on their own.
func (s *session) close() {
	if !s.closed.CompareAndSwap(false, true) {
		return
	}
	s.fail(errors.New("session closed"))
	s.stop()
	s.mu.Lock()
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.ps.Close()
	}
}

// init subscribes a fresh session to chans (and, in ModePattern, to the
// patterns) and waits until Redis has confirmed all of it.
func (s *session) init(ctx context.Context, chans []string) error {
	b := s.b
	if b.opts.Mode == ModePattern {
		c, err := s.connFor(ctx, "", nil)
		if err != nil {
			return err
		}
		mark := c.mark()
		if err := c.ps.PSubscribe(ctx, patterns...); err != nil {
			return fmt.Errorf("psubscribe: %w", err)
		}
		// The patterns are the session: refused (an ACL), it fails.
		if err := c.barrier(ctx); err != nil {
			return fmt.Errorf("psubscribe: %w", err)
		}
		if d := c.since(mark); d.refusals > 0 {
			return fmt.Errorf("psubscribe: %w", d.lastRefusal)
		}
		var plain []string
		for _, ch := range chans {
			if !b.covered(ch) {
				plain = append(plain, ch)
			}
		}
		chans = plain
	} else if b.cluster == nil {
		// One connection exists even with nothing to subscribe yet, so the
		// session can be probed and reports a dead Redis.
		if _, err := s.connFor(ctx, "", nil); err != nil {
			return err
		}
	}
	if s.probeCh != "" && !b.covered(s.probeCh) { // the client pattern brings it in ModePattern
		chans = append(chans[:len(chans):len(chans)], s.probeCh)
	}
	err := s.apply(ctx, true, chans)
	var refused *refusedError
	if errors.As(err, &refused) {
		// Channels refused by the ACL cost themselves only (the broker
		// has noted them), but the probe channel is the session's own.
		if s.probeCh != "" && slices.Contains(refused.chans, s.probeCh) {
			return fmt.Errorf("subscribe the probe channel %s (the ACL must allow ws:client:*): %w", s.probeCh, refused.err)
		}
		return nil
	}
	return err
}

// apply sends (un)subscribe commands for chans, batched, and waits for
// Redis to have processed them on every connection involved.
//
// The connection is shared by every channel of the instance, so the
// caller's context bounds only the caller's wait, never a write: go-redis
// turns a context's deadline into the write's, and a write cut short
// leaves the connection unusable, which would cost every channel a
// resubscription (and the messages published meanwhile) because one
// caller gave up. Writes are bounded by the client's WriteTimeout instead.
//
// An error reply leaves the connection as it was (see answered). A
// channel the user's ACL does not allow is refused (NOPERM) with the
// whole command that names it, and the reply does not always say which
// (Redis before 7.2 does not): the channels of a subscribe that Redis did
// not confirm are then sent again one a command, and those refused again
// are the refused ones. They cost themselves only: apply returns a
// *refusedError naming them, once the others are subscribed, and the
// broker notes them (see Broker.noteRefused). Any other error reply
// (BUSY while a script runs, LOADING) fails apply with Redis's answer,
// and the connection goes on.
func (s *session) apply(ctx context.Context, add bool, chans []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(chans) == 0 {
		return s.barrierAll(ctx)
	}
	groups, err := s.group(ctx, add, chans)
	if err != nil {
		return err
	}
	type part struct {
		chans []string
		mark  answerCount // the connection's error replies before it was sent
	}
	wctx := context.WithoutCancel(ctx)
	touched := make(map[*conn]*part, len(groups))
	var order []*conn
	defer func() {
		if add {
			for c, p := range touched {
				c.untrack(p.chans)
			}
		}
	}()
	for _, g := range groups {
		p := touched[g.conn]
		if p == nil {
			p = &part{mark: g.conn.mark()}
			touched[g.conn] = p
			order = append(order, g.conn)
		}
		p.chans = append(p.chans, g.chans...)
		if add {
			g.conn.trackAll(g.chans) // before it is sent: see read
		}
		for start := 0; start < len(g.chans); start += s.b.opts.SubscribeBatch {
			batch := g.chans[start:min(start+s.b.opts.SubscribeBatch, len(g.chans))]
			// Noted before it is sent: a refusal (MOVED) read before
			// the note would otherwise be undone by it.
			g.conn.note(add, batch)
			if err := g.conn.send(wctx, add, batch); err != nil {
				g.conn.fail(err)
				return err
			}
		}
	}
	for _, c := range order {
		if err := c.barrier(ctx); err != nil {
			return err
		}
	}
	var refused []string
	var refusal error
	for _, c := range order {
		p := touched[c]
		d := c.since(p.mark)
		if d.others > 0 {
			return fmt.Errorf("redis answered %s: %w", nodeName(c.key), d.lastOther)
		}
		if !add || d.refusals == 0 {
			continue
		}
		left := c.untrack(p.chans)
		delete(touched, c)
		r, err := c.sortOut(ctx, left)
		if err != nil {
			return err
		}
		if len(r) > 0 {
			refused = append(refused, r...)
			refusal = d.lastRefusal
		}
	}
	if add && s.perNode() {
		// Redis answered in order: a channel refused (MOVED) before the
		// barrier's reply is no longer noted.
		gone := make(map[string]struct{}, len(refused))
		for _, ch := range refused {
			gone[ch] = struct{}{}
		}
		for _, g := range groups {
			for _, ch := range g.chans {
				if _, ok := gone[ch]; !ok && !g.conn.holds(ch) {
					return fmt.Errorf("%s refused %s (its slot has moved)", nodeName(g.conn.key), ch)
				}
			}
		}
	}
	if add {
		s.b.noteSubscribed(chans, refused, refusal)
	}
	if len(refused) > 0 {
		return &refusedError{chans: refused, err: refusal}
	}
	return nil
}

// sortOut finds which of chans, whose subscribe Redis did not confirm
// after a refusal by the ACL, are refused: each is sent again in a
// command of its own, and those Redis does not confirm then are. They are
// no longer noted as held here.
func (c *conn) sortOut(ctx context.Context, chans []string) ([]string, error) {
	if len(chans) == 0 {
		return nil, nil
	}
	mark := c.mark()
	c.trackAll(chans)
	defer c.untrack(chans)
	wctx := context.WithoutCancel(ctx) // see apply
	for _, ch := range chans {
		if err := c.send(wctx, true, []string{ch}); err != nil {
			c.fail(err)
			return nil, err
		}
	}
	if err := c.barrier(ctx); err != nil {
		return nil, err
	}
	d := c.since(mark)
	if d.others > 0 {
		return nil, fmt.Errorf("redis answered %s: %w", nodeName(c.key), d.lastOther)
	}
	left := c.untrack(chans)
	c.note(false, left)
	return left, nil
}

// refusedError is apply's error when Redis refused some of the channels
// to subscribe (an ACL's NOPERM) and subscribed the others.
type refusedError struct {
	chans []string
	err   error // Redis's answer
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("redis refused %d channels (%s): %v", len(e.chans), describe(e.chans), e.err)
}

func (e *refusedError) Unwrap() []error { return []error{ErrRefused, e.err} }

// describe names the first few of chans.
func describe(chans []string) string {
	const most = 3
	if len(chans) <= most {
		return strings.Join(chans, ", ")
	}
	return strings.Join(chans[:most], ", ") + ", …"
}

// trackAll starts waiting for Redis to confirm the subscription of chans
// on c (see read).
func (c *conn) trackAll(chans []string) {
	c.mu.Lock()
	if c.track == nil {
		c.track = make(map[string]struct{}, len(chans))
	}
	for _, ch := range chans {
		c.track[ch] = struct{}{}
	}
	c.mu.Unlock()
}

// untrack stops waiting for chans and returns those Redis has not
// confirmed.
func (c *conn) untrack(chans []string) []string {
	var left []string
	c.mu.Lock()
	for _, ch := range chans {
		if _, ok := c.track[ch]; ok {
			left = append(left, ch)
			delete(c.track, ch)
		}
	}
	if len(c.track) == 0 {
		c.track = nil // no table kept from a crowd
	}
	c.mu.Unlock()
	return left
}

// confirmed notes Redis's confirmation of ch's subscription.
func (c *conn) confirmed(ch string) {
	c.mu.Lock()
	if c.track != nil {
		delete(c.track, ch)
	}
	c.mu.Unlock()
}

// answered takes an error reply read on c that leaves the connection as
// it was: Redis read a command and refused it (an ACL's NOPERM, BUSY
// while a script runs, LOADING, an unknown command). A subscription that
// Redis is answering is alive, and dropping it would lose what is
// published until the next session is subscribed (found in a chaos
// trial: a busy script, then messages lost after SCRIPT KILL). It counts
// the reply, wakes whoever waits for one and reports true. Anything else
// reports false, and ends the connection: a failure that is not an error
// reply (a broken connection, a reply that cannot be parsed), READONLY,
// on which go-redis replaces the connection under the PubSub, and a
// cluster's redirection (perNode connections take MOVED in refused; on
// another a client for one server reached a cluster node).
func (c *conn) answered(err error) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	if redis.IsReadOnlyError(err) || redis.HasErrorPrefix(err, "MOVED") || redis.HasErrorPrefix(err, "ASK") {
		return false
	}
	refusal := channelRefusal(err)
	c.mu.Lock()
	if refusal {
		c.answers.refusals++
		c.answers.lastRefusal = rerr
	} else {
		c.answers.others++
		c.answers.lastOther = rerr
	}
	woken := c.woken
	c.woken = nil
	c.mu.Unlock()
	for w := range woken {
		close(w)
	}
	if !refusal { // a refusal is logged with its channels (noteSubscribed)
		b := c.s.b
		if ok, n := b.answerLog.Allow(); ok {
			b.log.Warn("redis answered an error on the subscription connection; the subscription goes on",
				zap.String("connection", nodeName(c.key)), zap.Error(err), zap.Uint64("suppressed", n))
		}
	}
	return true
}

// channelRefusal reports an ACL's refusal of the channels a command
// names: "NOPERM this user has no permissions to access one of the
// channels used as arguments" (Redis 6 and 7.0), "NOPERM User u has no
// permissions to access the 'ch' channel" (7.2 on). A refusal of the
// command itself ("… to run the 'subscribe' command") is not one.
func channelRefusal(err error) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	msg := rerr.Error()
	return strings.HasPrefix(msg, "NOPERM") && strings.Contains(msg, "permissions to access") && strings.Contains(msg, "channel")
}

// mark is where c's error replies stand now.
func (c *conn) mark() answerCount {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.answers
}

// since counts the error replies read on c since m, and gives the last
// of each kind.
func (c *conn) since(m answerCount) answerCount {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.answers
	d.refusals -= m.refusals
	d.others -= m.others
	return d
}

// nextAnswer returns a channel closed by the next error reply read on c,
// and a func that forgets it.
func (c *conn) nextAnswer() (<-chan struct{}, func()) {
	w := make(chan struct{})
	c.mu.Lock()
	if c.woken == nil {
		c.woken = make(map[chan struct{}]struct{})
	}
	c.woken[w] = struct{}{}
	c.mu.Unlock()
	return w, func() {
		c.mu.Lock()
		delete(c.woken, w)
		c.mu.Unlock()
	}
}

// note records chans as subscribed on c, or no longer (perNode only).
func (c *conn) note(add bool, chans []string) {
	if !c.s.perNode() {
		return
	}
	c.mu.Lock()
	for _, ch := range chans {
		if add {
			c.chans[ch] = struct{}{}
		} else {
			delete(c.chans, ch)
		}
	}
	c.mu.Unlock()
}

// holds reports whether ch is subscribed on c (perNode only).
func (c *conn) holds(ch string) bool {
	c.mu.Lock()
	_, ok := c.chans[ch]
	c.mu.Unlock()
	return ok
}

// fail ends the connection. In a perNode session only this one is lost:
// it is closed, which releases whatever Redis holds for it, taken out of
// the session, and the supervisor resubscribes its channels where they
// live now. Otherwise the whole session is.
func (c *conn) fail(err error) {
	s := c.s
	if !s.perNode() {
		s.fail(err)
		return
	}
	first := false
	c.lostOnce.Do(func() {
		c.err = err
		close(c.lost)
		first = true
	})
	if !first {
		return
	}
	s.mu.Lock()
	if s.conns != nil && s.conns[c.key] == c {
		delete(s.conns, c.key)
	}
	s.mu.Unlock()
	_ = c.ps.Close()
	if !s.closed.Load() {
		s.b.log.Warn("sharded subscription connection lost; resubscribing its channels", zap.String("node", c.key), zap.Error(err))
		s.needRepair()
	}
}

// cause says why the connection was lost: its own failure, or its
// session's.
func (c *conn) cause() error {
	select {
	case <-c.lost:
		return c.err
	default:
		return c.s.cause()
	}
}

type group struct {
	conn  *conn
	chans []string
}

// group splits chans by connection and, in ModeSharded, by hash slot: one
// SSUBSCRIBE may only name channels of one slot on a cluster. In a
// perNode session an unsubscribe goes to the connection that holds each
// channel (see groupHeld).
func (s *session) group(ctx context.Context, add bool, chans []string) ([]group, error) {
	b := s.b
	if !add && s.perNode() {
		return s.groupHeld(chans), nil
	}
	if b.opts.Mode != ModeSharded {
		c, err := s.connFor(ctx, "", nil)
		if err != nil {
			return nil, err
		}
		return []group{{c, chans}}, nil
	}
	type key struct {
		node string
		slot int
	}
	idx := make(map[key]int)
	var out []group
	reloaded := false
	for _, ch := range chans {
	retry:
		node := ""
		var nc *redis.Client
		if b.cluster != nil {
			var err error
			nc, err = b.cluster.MasterForKey(ctx, ch)
			if err != nil {
				return nil, fmt.Errorf("find the node of %s: %w", ch, err)
			}
			node = nc.Options().Addr
		}
		k := key{node, 0}
		if b.cluster != nil {
			k.slot = slot(ch) // a standalone server takes any mix of channels
		}
		i, ok := idx[k]
		if !ok {
			c, err := s.connFor(ctx, node, nc)
			if errors.Is(err, errNotMaster) && !reloaded {
				// go-redis's slot map still names a master that failed
				// over (it reloads on redirections only): fetch it again,
				// once, and place the channel on its new owner (found
				// under load, seconds after a failover).
				reloaded = true
				if _, rerr := b.masters(ctx); rerr == nil {
					goto retry
				}
			}
			if err != nil {
				return nil, err
			}
			i = len(out)
			idx[k] = i
			out = append(out, group{conn: c})
		}
		out[i].chans = append(out[i].chans, ch)
	}
	return out, nil
}

// groupHeld splits chans by the connection holding each and by slot;
// channels held nowhere (their connection was lost) are left out.
func (s *session) groupHeld(chans []string) []group {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	type key struct {
		c    *conn
		slot int
	}
	idx := make(map[key]int)
	var out []group
	for _, ch := range chans {
		for _, c := range conns {
			if !c.holds(ch) {
				continue
			}
			k := key{c, slot(ch)}
			i, ok := idx[k]
			if !ok {
				i = len(out)
				idx[k] = i
				out = append(out, group{conn: c})
			}
			out[i].chans = append(out[i].chans, ch)
		}
	}
	return out
}

// connFor returns the session's connection to node (nc is that node's
// client on a cluster, nil otherwise), opening it and starting its read
// loop on first use.
func (s *session) connFor(ctx context.Context, node string, nc *redis.Client) (*conn, error) {
	s.mu.Lock()
	if s.conns == nil {
		s.mu.Unlock()
		return nil, errors.New("session closed")
	}
	if c := s.conns[node]; c != nil {
		s.mu.Unlock()
		return c, nil
	}
	if nc == nil { // the session's one connection: opened under the lock
		defer s.mu.Unlock()
		c, err := s.open(ctx, node, nil)
		if err != nil {
			return nil, err
		}
		s.install(c)
		return c, nil
	}
	// One per master: opened without the lock, which the connections to
	// the other masters need meanwhile (a paused master must not hold
	// them up).
	s.mu.Unlock()
	c, err := s.open(ctx, node, nc)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		_ = c.ps.Close()
		return nil, errors.New("session closed")
	}
	if other := s.conns[node]; other != nil {
		_ = c.ps.Close()
		return other, nil
	}
	s.install(c)
	return c, nil
}

// open opens a connection to node and reads the reply to a PING on it, so
// that a dead Redis fails here; s.mu is held unless nc is set.
func (s *session) open(ctx context.Context, node string, nc *redis.Client) (*conn, error) {
	b := s.b
	if nc != nil {
		// A slot map may be stale, and a master that failed over is now a
		// replica of its shard: it takes SSUBSCRIBE and hears the shard's
		// messages, but no unsubscribe would ever go there.
		rctx, cancel := context.WithTimeout(ctx, b.opts.PingTimeout)
		err := b.checks.Run(rctx, func(ctx context.Context) error { return isMaster(ctx, nc) })
		cancel()
		if err != nil {
			return nil, fmt.Errorf("open subscription connection %s: %w", nodeName(node), err)
		}
	}
	var ps *redis.PubSub
	switch {
	case nc != nil:
		ps = nc.SSubscribe(ctx)
	case b.opts.Mode == ModeSharded:
		ps = b.client.SSubscribe(ctx)
	case b.onCluster != nil && b.opts.Mode == ModeAudience:
		// Classic pub/sub on a cluster: on a node of the broker's
		// choosing, which a renewal's successor must share (see
		// Broker.renew); the cluster bus brings every publish there.
		if s.node == nil {
			n, err := b.onCluster.MasterForKey(ctx, s.probeCh)
			if err != nil {
				return nil, fmt.Errorf("open subscription connection: pick a node: %w", err)
			}
			s.node = n
		}
		ps = s.node.Subscribe(ctx)
	default:
		ps = b.client.Subscribe(ctx)
	}
	c := &conn{s: s, key: node, ps: ps, waiters: make(map[string]chan struct{}), born: time.Now(),
		chans: make(map[string]struct{}), lost: make(chan struct{})}
	token := "fxws-open"
	err := ps.Ping(ctx, token)
	if err == nil {
		err = c.readUntil(ctx, token)
	}
	if err != nil {
		_ = ps.Close()
		return nil, fmt.Errorf("open subscription connection %s: %w", nodeName(node), err)
	}
	return c, nil
}

// install adds c to the session and starts its read loop and watch;
// s.mu is held.
func (s *session) install(c *conn) {
	if s.handovers != nil {
		c.mute.Store(true) // a renewal's successor: see Broker.renew
		if h := s.handovers[c.key]; h != nil {
			c.ho.Store(h)
		}
	}
	s.conns[c.key] = c
	s.b.readers.Add(2)
	go c.read()
	go c.watch()
}

func nodeName(node string) string {
	if node == "" {
		return "to redis"
	}
	return "to " + node
}

// send writes one (un)subscribe command without waiting for the reply.
func (c *conn) send(ctx context.Context, add bool, chans []string) error {
	sharded := c.s.b.opts.Mode == ModeSharded
	var err error
	switch {
	case add && sharded:
		err = c.ps.SSubscribe(ctx, chans...)
	case add:
		err = c.ps.Subscribe(ctx, chans...)
	case sharded:
		err = c.ps.SUnsubscribe(ctx, chans...)
	default:
		err = c.ps.Unsubscribe(ctx, chans...)
	}
	return err
}

// barrier sends a PING with a unique payload and waits for its reply: Redis
// answers in order, so every command written before has been processed.
func (c *conn) barrier(ctx context.Context) error {
	token := "fxws-barrier-" + strconv.FormatUint(c.seq.Add(1), 10)
	ch, done := c.await(token)
	defer done()
	mark := c.mark()
	// Written without the caller's deadline, for the reason apply gives.
	if err := c.ps.Ping(context.WithoutCancel(ctx), token); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	for {
		// An error reply other than a refusal of channels (BUSY while a
		// script runs, LOADING) may be this PING's, whose PONG then never
		// comes: the wait ends with it. One to an earlier command (the
		// subscribe this waits for, refused) ends it too, a little early.
		answer, forget := c.nextAnswer()
		if d := c.since(mark); d.others > 0 {
			forget()
			return fmt.Errorf("redis answered %s: %w", nodeName(c.key), d.lastOther)
		}
		select {
		case <-ch:
			forget()
			return nil
		case <-answer:
			forget()
			continue
		case <-c.s.dead:
			forget()
			return fmt.Errorf("subscription connection lost: %w", c.s.cause())
		case <-c.lost:
			forget()
			return fmt.Errorf("subscription connection %s lost: %w", nodeName(c.key), c.cause())
		case <-ctx.Done():
			forget()
			return fmt.Errorf("waiting for redis to confirm: %w", ctx.Err())
		}
	}
}

// readUntil reads the connection directly until the PING reply token
// arrives; only used before the read loop starts.
func (c *conn) readUntil(ctx context.Context, token string) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(c.s.b.opts.PingTimeout)
	}
	for {
		wait := time.Until(deadline)
		if wait <= 0 {
			return fmt.Errorf("no reply to ping within the deadline: %w", context.DeadlineExceeded)
		}
		msg, err := c.ps.ReceiveTimeout(ctx, wait)
		if err != nil {
			return err
		}
		if p, ok := msg.(*redis.Pong); ok && p.Payload == token {
			return nil
		}
	}
}

// read is the connection's read loop: it never blocks on delivery, and
// reads without a deadline. A deadline that expired in the middle of a
// large reply would leave the rest of that reply in the stream, to be parsed
// as the next one: the message lost and the connection torn down, or bytes
// of a payload taken for a message of their own. watch looks after a
// connection that went silent instead.
func (c *conn) read() {
	b := c.s.b
	defer b.readers.Done()
	for {
		msg, err := c.ps.Receive(c.s.ctx)
		if c.s.closed.Load() {
			return
		}
		if err != nil {
			if c.s.perNode() && c.refused(err) {
				continue
			}
			if c.answered(err) {
				c.heard.Store(int64(time.Since(c.born)))
				continue
			}
			c.fail(fmt.Errorf("read %s: %w", nodeName(c.key), b.clusterHint(err)))
			return
		}
		c.heard.Store(int64(time.Since(c.born)))
		switch m := msg.(type) {
		case *redis.Message:
			if strings.HasPrefix(m.Channel, probePrefix) {
				if m.Channel == c.s.probeCh {
					c.release(m.Payload)
				}
				if h := c.ho.Load(); h != nil && m.Channel == h.channel && m.Payload == h.marker {
					c.passMarker(h)
				}
				continue // a probe or a marker, ours or another instance's
			}
			if c.mute.Load() {
				continue // the other session of a renewal delivers it
			}
			b.dispatch(m.Channel, m.Payload)
		case *redis.Pong:
			c.release(m.Payload)
		case *redis.Subscription:
			if m.Kind == "subscribe" || m.Kind == "ssubscribe" {
				c.confirmed(m.Channel)
				continue
			}
			// Redis unsubscribes sharded channels by itself when their
			// slot moves to another node; a channel still held must then
			// be subscribed where it lives now.
			if m.Kind == "sunsubscribe" && m.Channel != "" {
				b.mu.Lock()
				_, held := b.want[m.Channel]
				b.mu.Unlock()
				if !held {
					continue
				}
				if c.s.perNode() {
					// Only this channel is lost: the connection goes on. A
					// failover moves thousands at once: the repair logs.
					b.log.Debug("sharded channel moved; resubscribing", zap.String("channel", m.Channel))
					c.note(false, []string{m.Channel})
					c.s.needRepair()
					continue
				}
				b.log.Info("sharded channel moved; resubscribing", zap.String("channel", m.Channel))
				c.s.fail(fmt.Errorf("channel %s unsubscribed by redis (slot moved)", m.Channel))
				return
			}
		}
	}
}

// refused handles an error reply read on a perNode connection: an
// SSUBSCRIBE sent by a stale slot map to a master that does not serve the
// slot is answered MOVED, and the connection stays usable. The channels
// of that slot are not held here: forgotten, and subscribed by a repair
// on a fresh map. It reports whether err was such a reply; any other
// error is left to answered, which keeps the connection for an answer
// (an ACL's NOPERM, BUSY) and fails it otherwise.
func (c *conn) refused(err error) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	f := strings.Fields(rerr.Error())
	if len(f) < 2 || f[0] != "MOVED" {
		return false // another answer (an ACL's NOPERM, BUSY): see answered
	}
	sl, perr := strconv.Atoi(f[1])
	if perr != nil {
		return false
	}
	c.mu.Lock()
	var gone []string
	for ch := range c.chans {
		if slot(ch) == sl {
			gone = append(gone, ch)
		}
	}
	for _, ch := range gone {
		delete(c.chans, ch)
	}
	c.mu.Unlock()
	c.s.b.log.Info("sharded channels refused by a node that no longer serves their slot; resubscribing",
		zap.String("node", c.key), zap.Int("slot", sl), zap.Int("channels", len(gone)))
	c.s.b.cluster.ReloadState(c.s.ctx)
	c.s.needRepair()
	return true
}

// await registers a wait for token, which release ends by closing the
// channel; done forgets the wait.
func (c *conn) await(token string) (ch <-chan struct{}, done func()) {
	w := make(chan struct{})
	c.mu.Lock()
	c.waiters[token] = w
	c.mu.Unlock()
	return w, func() {
		c.mu.Lock()
		delete(c.waiters, token)
		c.mu.Unlock()
	}
}

// release wakes whoever waits for token (a barrier PING's payload, or a
// loopback probe's).
func (c *conn) release(token string) {
	c.mu.Lock()
	if w := c.waiters[token]; w != nil {
		close(w)
		delete(c.waiters, token)
	}
	c.mu.Unlock()
}

// watch probes the connection when nothing has been read from it for
// ProbeInterval, and fails the session when the probe has not come back
// within PingTimeout.
//
// The probe is a loopback: a PUBLISH through the client's own connections
// to the session's probe channel, which must arrive on the subscription
// connection. So it proves not only that the connection is open and read,
// but that it receives what this instance publishes. A PING alone would
// miss a subscription left on a server that no longer gets the fleet's
// publishes: after a planned Sentinel failover, go-redis moves its pool
// to the new master but leaves pub/sub connections where they are, on an
// old master that stays a master, out of the replication stream, until
// Sentinel gets round to demoting it. When the PUBLISH itself fails (Redis
// unreachable, or an ACL that denies it), and on a cluster in ModeSharded,
// the probe is a PING on the subscription connection instead.
//
// A reply read in full counts only when it is the probe's, so a message
// that takes longer than ProbeInterval + PingTimeout to arrive in full
// counts as a dead connection.
func (c *conn) watch() {
	b := c.s.b
	defer b.readers.Done()
	t := time.NewTimer(b.opts.ProbeInterval)
	defer t.Stop()
	var last time.Time // of the last probe asked for by probeSoon
	for {
		select {
		case <-c.s.dead:
			return
		case <-c.lost:
			return
		case <-t.C:
			if idle := time.Since(c.born) - time.Duration(c.heard.Load()); idle < b.opts.ProbeInterval {
				t.Reset(b.opts.ProbeInterval - idle)
				continue
			}
		case <-c.s.soon:
			// A channel's first publishes may race its subscription:
			// one such probe a second at most.
			if time.Since(last) < time.Second {
				continue
			}
			last = time.Now()
		}
		if err := c.probe(); err != nil {
			if !c.s.closed.Load() {
				b.stats.probeFailures.Add(1)
				c.fail(err)
			}
			return
		}
		t.Reset(b.opts.ProbeInterval)
	}
}

// probeEnvelope is what goes to a probe channel ch, probes and renewal
// markers alike: a client envelope for a client nobody has (the channel's
// own name: client ids are UUIDs), with data, a JSON value, to tell them
// apart. Servers that receive it in their client pattern, the original
// and earlier versions of this one, drop it as they drop every message
// for a client held elsewhere, without a word; they would log a payload
// that is not an envelope, or an envelope of an unknown type.
func probeEnvelope(ch, data string) string {
	return `{"serverId":"fxws-probe","type":"client","target":"` + strings.TrimPrefix(ch, protocol.ChannelClientPrefix) +
		`","event":"fxws-probe","data":` + data + `}`
}

// probe sends one probe and waits for it to come back (see watch).
func (c *conn) probe() error {
	b := c.s.b
	token := probeEnvelope(c.s.probeCh, strconv.FormatUint(c.seq.Add(1), 10))
	back, done := c.await(token)
	defer done()
	ctx, cancel := context.WithTimeout(c.s.ctx, b.opts.PingTimeout)
	defer cancel()
	how := "a loopback publish"
	err := errors.New("no probe channel")
	var receivers int64
	if ch := c.s.probeCh; ch != "" {
		receivers, err = b.publishCheck(ctx, b.client, ch, token)
	}
	if err == nil && receivers == 0 && b.countsAll() {
		// Redis confirmed the probe channel's subscription when the
		// session began: no need to wait for what cannot come.
		return fmt.Errorf("subscription connection %s unresponsive: a loopback publish reached no subscriber (the server taking this instance's publishes is not the one it subscribes on)", nodeName(c.key))
	}
	var answer <-chan struct{} // nil: a loopback waits for its own message
	if err != nil {
		// The publish says nothing about the subscription connection:
		// ask it directly, with a wait of its own.
		how = "a ping"
		cancel()
		ctx, cancel = context.WithTimeout(c.s.ctx, b.opts.PingTimeout)
		defer cancel()
		// An error reply to it (BUSY while a script runs, LOADING) says
		// Redis reads and answers the connection as well as a PONG does.
		var forget func()
		answer, forget = c.nextAnswer()
		defer forget()
		// Written without the deadline, for the reason apply gives.
		if err := c.ps.Ping(context.WithoutCancel(ctx), token); err != nil {
			return fmt.Errorf("probe %s: %w", nodeName(c.key), err)
		}
	}
	select {
	case <-back:
		return nil
	case <-answer:
		return nil
	case <-c.s.dead:
		return c.s.cause()
	case <-c.lost:
		return c.cause()
	case <-ctx.Done():
		return fmt.Errorf("subscription connection %s unresponsive: %s did not come back within %v", nodeName(c.key), how, b.opts.PingTimeout)
	}
}

// barrierAll waits until Redis has processed everything sent on every
// connection of the session.
func (s *session) barrierAll(ctx context.Context) error {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		if err := c.barrier(ctx); err != nil {
			return err
		}
	}
	return nil
}

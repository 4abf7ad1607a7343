package redisbroker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
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
// or one per cluster master in ModeSharded. Any failure kills the whole
// session and the supervisor builds the next one from the channels held,
// which is simpler and safer than repairing connections one by one.
type session struct {
	b   *Broker
	ctx context.Context // cancelled by close

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

	// handovers is set on a renewal's successor before it subscribes
	// anything: each connection it opens, to the node of the key, is
	// mute and waits for that handover's marker (see Broker.renew).
	handovers map[string]*handover
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
}

func (b *Broker) newSession() *session {
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{b: b, ctx: ctx, stop: cancel, conns: make(map[string]*conn), dead: make(chan struct{}), soon: make(chan struct{}, 1)}
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
		if err := c.ps.PSubscribe(ctx, patterns...); err != nil {
			return fmt.Errorf("psubscribe: %w", err)
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
	return s.apply(ctx, true, chans)
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
func (s *session) apply(ctx context.Context, add bool, chans []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(chans) == 0 {
		return s.barrierAll(ctx)
	}
	groups, err := s.group(ctx, chans)
	if err != nil {
		return err
	}
	wctx := context.WithoutCancel(ctx)
	touched := make(map[*conn]struct{}, len(groups))
	for _, g := range groups {
		for start := 0; start < len(g.chans); start += s.b.opts.SubscribeBatch {
			batch := g.chans[start:min(start+s.b.opts.SubscribeBatch, len(g.chans))]
			if err := g.conn.send(wctx, add, batch); err != nil {
				s.fail(err)
				return err
			}
		}
		touched[g.conn] = struct{}{}
	}
	for c := range touched {
		if err := c.barrier(ctx); err != nil {
			return err
		}
	}
	return nil
}

type group struct {
	conn  *conn
	chans []string
}

// group splits chans by connection and, in ModeSharded, by hash slot: one
// SSUBSCRIBE may only name channels of one slot on a cluster.
func (s *session) group(ctx context.Context, chans []string) ([]group, error) {
	b := s.b
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
	for _, ch := range chans {
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

// connFor returns the session's connection to node (nc is that node's
// client on a cluster, nil otherwise), opening it and starting its read
// loop on first use.
func (s *session) connFor(ctx context.Context, node string, nc *redis.Client) (*conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		return nil, errors.New("session closed")
	}
	if c := s.conns[node]; c != nil {
		return c, nil
	}
	b := s.b
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
	c := &conn{s: s, key: node, ps: ps, waiters: make(map[string]chan struct{}), born: time.Now()}
	if s.handovers != nil {
		c.mute.Store(true) // a renewal's successor: see Broker.renew
		if h := s.handovers[node]; h != nil {
			c.ho.Store(h)
		}
	}
	// Open the connection now and read the PING reply here, before the
	// read loop exists, so that a dead Redis fails this call.
	token := "fxws-open"
	err := ps.Ping(ctx, token)
	if err == nil {
		err = c.readUntil(ctx, token)
	}
	if err != nil {
		_ = ps.Close()
		return nil, fmt.Errorf("open subscription connection %s: %w", nodeName(node), err)
	}
	s.conns[node] = c
	b.readers.Add(2)
	go c.read()
	go c.watch()
	return c, nil
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
	// Written without the caller's deadline, for the reason apply gives.
	if err := c.ps.Ping(context.WithoutCancel(ctx), token); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	select {
	case <-ch:
		return nil
	case <-c.s.dead:
		return fmt.Errorf("subscription connection lost: %w", c.s.cause())
	case <-ctx.Done():
		return fmt.Errorf("waiting for redis to confirm: %w", ctx.Err())
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
			c.s.fail(fmt.Errorf("read %s: %w", nodeName(c.key), err))
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
			// Redis unsubscribes sharded channels by itself when their
			// slot moves to another node; a channel still held must then
			// be subscribed where it lives now.
			if m.Kind == "sunsubscribe" && m.Channel != "" {
				b.mu.Lock()
				_, held := b.want[m.Channel]
				b.mu.Unlock()
				if held {
					b.log.Info("sharded channel moved; resubscribing", zap.String("channel", m.Channel))
					c.s.fail(fmt.Errorf("channel %s unsubscribed by redis (slot moved)", m.Channel))
					return
				}
			}
		}
	}
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
				c.s.fail(err)
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
	if err != nil {
		// The publish says nothing about the subscription connection:
		// ask it directly, with a wait of its own.
		how = "a ping"
		cancel()
		ctx, cancel = context.WithTimeout(c.s.ctx, b.opts.PingTimeout)
		defer cancel()
		// Written without the deadline, for the reason apply gives.
		if err := c.ps.Ping(context.WithoutCancel(ctx), token); err != nil {
			return fmt.Errorf("probe %s: %w", nodeName(c.key), err)
		}
	}
	select {
	case <-back:
		return nil
	case <-c.s.dead:
		return c.s.cause()
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

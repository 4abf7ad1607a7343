// Package redisbroker is the Redis implementation of broker.Broker, on
// go-redis's redis.UniversalClient: one code path for a single node,
// Sentinel (a failover client) and Cluster. It carries the Ignis channels
// (ws:broadcast, ws:room:<r>, ws:client:<id>, ws:user:<u>) unchanged, so our
// instances, Ignis instances and Ignis emitters can share one Redis.
//
// # Subscription modes
//
// ModeAudience (the default) subscribes to exactly the channels the helper
// asks for: ws:broadcast plus the room, client and user channels that have
// local members. Cross-node traffic per instance then follows its own
// audience: an instance receives a room message only if one of its clients
// is in that room. Use it when rooms, users and clients are spread over the
// instances (the common case); it is wire-compatible with Ignis publishers
// and emitters, which use classic PUBLISH.
//
// ModePattern is the original's scheme: SUBSCRIBE ws:broadcast and
// PSUBSCRIBE ws:room:*, ws:client:*, ws:user:*. Every instance receives
// every message and drops what has no local audience. It costs no
// subscription commands when clients join and leave, so it fits small
// fleets (two or three instances) with very high churn of rooms, or tools
// that want to observe all traffic.
//
// ModeSharded uses sharded pub/sub (SSUBSCRIBE/SPUBLISH, Redis 7+), which is
// what scales on Redis Cluster: a classic PUBLISH is forwarded to every node
// of a cluster, a sharded one only to the node that owns the channel's slot,
// and patterns do not exist there. The broker keeps one subscription
// connection per master and sends each channel's SSUBSCRIBE to the node
// owning it. Trade-off: sharded and classic pub/sub are separate namespaces,
// so in this mode our instances neither receive Ignis instances' or Ignis
// emitters' classic PUBLISH nor reach Ignis subscribers; use it for fleets
// made only of our servers and our emitter (emitter.Options.Sharded).
//
// # Faults
//
// The broker reads its pub/sub connections itself (PubSub.Receive, never
// the lossy Channel(), and without a read deadline, which could expire in
// the middle of a large reply and leave the stream out of step) and hands messages off to a few workers, one
// per hash of the channel name, so per-channel order is kept and delivery
// never blocks the read loop. When a connection fails, or a probe does not
// come back in time, the broker drops the whole subscription session and
// builds a new one with exponential backoff, subscribed to exactly the
// channels held at that moment. In ModeSharded on a cluster, whose
// connections go to independent masters, only the failed connection is
// dropped: the other masters' channels stay subscribed and delivered, and
// the lost ones are subscribed again, with the same backoff, where the
// slot map, fetched again and checked against the node's own role, says
// they live now; a connection to a node that is no longer a master is
// closed, and a channel held on a node that no longer owns its slot is
// unsubscribed there (see repair.go). Stats.Degraded tells while some
// are missing. The probe, sent when a
// subscription connection has been silent for ProbeInterval, is a loopback:
// the instance publishes to a channel of its own session, which the
// subscription connection must receive. So it also catches a connection
// that is alive but no longer hears the fleet, as after a planned Sentinel
// failover (go-redis moves its pool to the new master, not its pub/sub
// connections; the old master stays a master until Sentinel demotes it).
// Where the publish fails, and for the per-node connections of ModeSharded
// on a cluster, the probe is a PING on the subscription connection. Each
// waits PingTimeout: a connection that went silent is found within
// ProbeInterval + PingTimeout, or ProbeInterval + 2 × PingTimeout when the
// loopback publish itself fails or times out first (a frozen Redis), as
// the PING then has a wait of its own (a publish may be slow for reasons
// of the client's pool that say nothing of the subscription connection).
// Publishes fail within PublishTimeout while Redis is unreachable, and
// return the error. They are never sent twice: go-redis sends a command
// again (MaxRetries) when its connection fails after it was written, and a
// PUBLISH whose reply a broken connection lost was delivered twice while
// Publish returned nil (found in a chaos trial). The broker's publishes
// tell go-redis not to, without touching the client's options; such a
// publish returns the error, delivered once or not at all. A dial that
// failed, which sent nothing, is still retried as MaxRetries says.
//
// An error reply on a subscription connection does not end it: Redis
// read the command and answered. A probe's PING answered with one (BUSY
// while a script runs past busy-reply-threshold, LOADING) counts as
// answered (a chaos trial lost the messages published right after SCRIPT
// KILL to a session dropped for BUSY). A channel the Redis user's ACL
// does not allow (NOPERM) costs that channel only (see ErrRefused; it
// used to end the session, and each new one subscribed it again: all
// delivery lost for good). Any other answer fails the subscribe it
// answers, whose caller retries it, and is logged once a second at most.
// A session ends on a broken connection, a reply that cannot be parsed,
// READONLY or a redirection it cannot follow, or silence past the probe.
//
// A Redis that keeps cutting the subscription moments after each
// reconnect (an instance that falls behind what it subscribes to, cut at
// client-output-buffer-limit pubsub; a chaos trial saw 29 cuts in 8 s)
// is not answered with a reconnect every ReconnectBackoffMin: the backoff
// grows on from one loss to the next, up to ReconnectBackoffMax, until a
// session has lived 10 s. The "subscription lost" and "restored" lines
// come at most once a second each, with the count held back, and a loss
// to Redis closing the connection says it may be that limit. What is
// published during each gap reaches nobody here and is counted nowhere
// (Redis pub/sub keeps nothing, and does not say what a subscriber
// missed): Stats.Reconnects counts the gaps.
//
// # Memory after a crowd
//
// go-redis keeps each subscription connection's channels in a map that
// never shrinks, so a connection that once held a crowd's channels would
// keep their table for as long as it lives. Once the channels held fall to
// a quarter of a peak of 4096 or more, the broker replaces the session with
// a fresh one: each new connection subscribes first, then a marker
// published to a channel the old connection to the same server holds
// decides which of the two delivers each message, so none is lost or
// repeated (see renew.go). Stats.Renewals counts them. This is done in
// ModeAudience and ModeSharded, on a single server, Sentinel or a cluster;
// not in ModePattern, whose channels do not grow.
package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/internal/bounded"
	"github.com/fxws/websocket/internal/failfast"
	"github.com/fxws/websocket/internal/logthrottle"
	"github.com/fxws/websocket/internal/publishonce"
	"github.com/fxws/websocket/internal/redisready"
	"github.com/fxws/websocket/protocol"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Mode selects how the broker subscribes; see the package documentation.
type Mode int

// Subscription modes.
const (
	// ModeAudience subscribes to the channels of the local audience only.
	ModeAudience Mode = iota
	// ModePattern subscribes to ws:broadcast and the patterns ws:room:*,
	// ws:client:*, ws:user:*, as the original does.
	ModePattern
	// ModeSharded uses SSUBSCRIBE/SPUBLISH per channel (Redis Cluster).
	ModeSharded
)

// String names the mode.
func (m Mode) String() string {
	switch m {
	case ModeAudience:
		return "audience"
	case ModePattern:
		return "pattern"
	case ModeSharded:
		return "sharded"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// ParseMode reads "audience", "pattern" or "sharded" ("" is audience).
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "audience":
		return ModeAudience, nil
	case "pattern":
		return ModePattern, nil
	case "sharded":
		return ModeSharded, nil
	}
	return 0, fmt.Errorf("redisbroker: unknown mode %q (want audience, pattern or sharded)", s)
}

// Options tunes a Broker. Zero values mean the documented defaults.
type Options struct {
	// Mode is the subscription scheme. Default ModeAudience.
	Mode Mode
	// PublishTimeout bounds one publish, so that sends fail fast while
	// Redis is unreachable (refused connections, retries, pool waits).
	// Default 2 s. A connection that hangs mid-command is bounded by the
	// client's ReadTimeout/WriteTimeout unless the client was made with
	// ContextTimeoutEnabled, which lets this deadline apply there too.
	PublishTimeout time.Duration
	// PingTimeout bounds the return of a probe and the PING with which
	// Start checks the connection. Default 2 s. A probe whose loopback
	// publish fails or times out falls back to a PING with a PingTimeout
	// of its own, so a frozen Redis is found up to ProbeInterval + 2 ×
	// PingTimeout after it went silent (see the package doc).
	PingTimeout time.Duration
	// ProbeInterval is how long a subscription connection may stay silent
	// before it is probed (see the package doc: a loopback publish that
	// must come back on it). Default 2 s: after a planned Sentinel
	// failover, an instance that publishes nothing hears the fleet again
	// about that long after the switch. Silent means no reply read in
	// full: a single message that takes longer than ProbeInterval +
	// PingTimeout to arrive counts as a dead connection. Each probe is one
	// PUBLISH, and instances in ModePattern receive one another's.
	ProbeInterval time.Duration
	// ReconnectBackoffMin and ReconnectBackoffMax bound the exponential
	// backoff between attempts to rebuild the subscriptions. Defaults
	// 100 ms and 1 s: however long Redis was away, what this instance
	// subscribes to is heard again about a second after Redis is back
	// (until then, publishes from elsewhere reach nobody here and are
	// lost, as Redis pub/sub keeps nothing). An attempt against a Redis
	// that refuses connections costs one refused dial; each wait is
	// drawn between half the step and the step, so that a fleet of
	// instances does not come back in lockstep. The first step after a
	// loss is ReconnectBackoffMin after a session that lived 10 s or
	// more, and twice the last one (up to ReconnectBackoffMax) after a
	// shorter one, so that a Redis that keeps cutting the subscription
	// is not reconnected to every ReconnectBackoffMin.
	ReconnectBackoffMin, ReconnectBackoffMax time.Duration
	// SubscribeBatch is the most channels sent in one (un)subscribe
	// command. Default 512.
	SubscribeBatch int
	// Workers is how many goroutines run the handler. Default 1: messages
	// are handled in the order they arrive, as the original handles them,
	// so one emitter's ToRoom, then ToClient, reach a client in that
	// order. More fan out what other instances and emitters publish on
	// several cores; each channel then still goes to the same worker,
	// which keeps its own order, but messages of different channels may
	// be handled out of their arrival order (a user trial saw 422 of 3000
	// alternating sends reach a device reversed with 4). The handler runs
	// on the worker and must not block (the server helper hands what its
	// outbound transformer must do to goroutines of its own).
	Workers int
	// QueueSize is each worker's backlog; a message arriving when it is
	// full is dropped and counted rather than stalling the read loop.
	// Default 8192.
	QueueSize int
	// QueueBytes bounds the payload bytes waiting in all the workers'
	// queues together: QueueSize alone would let Workers × 8192 large messages
	// (Redis takes up to 512 MB each) pile up while the workers are
	// starved of CPU. A message that would pass it is dropped and counted,
	// as on a full queue; one message alone is always taken. Default
	// 64 MiB.
	QueueBytes int
	// Logger receives connection events and dropped messages. Default: none.
	Logger *zap.Logger
}

// Validate reports every option that cannot work, joined in one error:
// an unknown Mode, a negative duration or size (zero means the default;
// a negative number is a mistake, not a request for it).
func (o Options) Validate() error {
	var errs []error
	if o.Mode < ModeAudience || o.Mode > ModeSharded {
		errs = append(errs, fmt.Errorf("Mode %d is not ModeAudience, ModePattern or ModeSharded", int(o.Mode)))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"PublishTimeout", o.PublishTimeout}, {"PingTimeout", o.PingTimeout}, {"ProbeInterval", o.ProbeInterval},
		{"ReconnectBackoffMin", o.ReconnectBackoffMin}, {"ReconnectBackoffMax", o.ReconnectBackoffMax}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative, got %v", d.name, d.v))
		}
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"SubscribeBatch", o.SubscribeBatch}, {"Workers", o.Workers}, {"QueueSize", o.QueueSize}, {"QueueBytes", o.QueueBytes}} {
		if n.v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative, got %d", n.name, n.v))
		}
	}
	return errors.Join(errs...)
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.PublishTimeout, 2*time.Second)
	def(&o.PingTimeout, 2*time.Second)
	def(&o.ProbeInterval, 2*time.Second)
	def(&o.ReconnectBackoffMin, 100*time.Millisecond)
	def(&o.ReconnectBackoffMax, time.Second)
	if o.ReconnectBackoffMax < o.ReconnectBackoffMin {
		o.ReconnectBackoffMax = o.ReconnectBackoffMin
	}
	if o.SubscribeBatch <= 0 {
		o.SubscribeBatch = 512
	}
	if o.Workers <= 0 {
		o.Workers = 1
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 8192
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = 64 << 20
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return o
}

// ErrRing is returned by Start for a redis.Ring: it spreads channels over
// servers that do not share pub/sub, so instances would publish where
// others do not listen (and go-redis's Ring panics on a subscription
// without a channel).
var ErrRing = errors.New("redisbroker: start: a redis.Ring spreads channels over servers that do not share pub/sub; give a redis.Client (NewFailoverClient for Sentinel) or a redis.ClusterClient")

// ErrClusterNode is returned, wrapped with Redis's answer, when a client
// made for one server (redis.NewClient) reaches a node of a Redis Cluster
// in ModeSharded: the node answers MOVED for every channel of a slot it
// does not own, and the broker can only follow the slots with a
// redis.ClusterClient. Start fails with it at once.
var ErrClusterNode = errors.New("redisbroker: the server is a node of a Redis Cluster, which a client for one server cannot follow in ModeSharded; give a redis.ClusterClient (redis.NewClusterClient) with the cluster's addresses")

// clusterHint wraps err with ErrClusterNode when it is a cluster's
// redirection reaching a client for one server.
func (b *Broker) clusterHint(err error) error {
	var answer redis.Error
	if err == nil || b.onCluster != nil || !errors.As(err, &answer) {
		return err
	}
	if msg := answer.Error(); strings.HasPrefix(msg, "MOVED ") || strings.HasPrefix(msg, "ASK ") {
		return fmt.Errorf("%w: %w", ErrClusterNode, err)
	}
	return err
}

// checkNotClusterNode fails with ErrClusterNode when ModeSharded is given
// a client for one server that is a node of a cluster: the first
// redirection could come much later, with a channel of another node's
// slot. HELLO is in @connection, which the documented ACL grants; a
// server that does not answer it is taken as it is.
func (b *Broker) checkNotClusterNode(ctx context.Context) error {
	if b.opts.Mode != ModeSharded || b.onCluster != nil {
		return nil
	}
	var mode any
	err := b.checks.Run(ctx, func(ctx context.Context) error {
		var err error
		mode, err = helloField(ctx, b.client, "mode")
		return err
	})
	if err == nil && mode == "cluster" {
		return fmt.Errorf("%w (HELLO says mode cluster)", ErrClusterNode)
	}
	return nil
}

// helloField is one field of the server's answer to HELLO (without a
// protocol version, which changes nothing on the connection): HELLO is in
// @connection, which the documented ACL grants, where ROLE and INFO are
// not.
func helloField(ctx context.Context, c interface {
	Do(ctx context.Context, args ...any) *redis.Cmd
}, field string) (any, error) {
	v, err := c.Do(ctx, "HELLO").Result()
	if err != nil {
		return nil, err
	}
	switch r := v.(type) {
	case map[any]any: // RESP3
		return r[field], nil
	case []any: // RESP2: name, value, ...
		for i := 0; i+1 < len(r); i += 2 {
			if r[i] == field {
				return r[i+1], nil
			}
		}
	}
	return nil, nil
}

// ErrUnavailable is returned by Subscribe and Unsubscribe while the
// subscription connection is being rebuilt, and in ModeSharded on a
// cluster when the connection to a channel's master cannot be had (the
// master down, a failover under way). The change is kept: the new
// connection, or the repair of that shard, is subscribed to it. It wraps
// broker.ErrChangeKept.
var ErrUnavailable = fmt.Errorf("redisbroker: subscription connection unavailable: %w", broker.ErrChangeKept)

// ErrRefused is wrapped, with Redis's answer, by the error of a Subscribe
// naming channels that Redis refused to subscribe (NOPERM: the Redis
// user's ACL does not allow them). It costs those channels only: the
// others are subscribed, and the session goes on. The refused channels
// stay in the set held (Channels) but are not subscribed; the broker
// logs them (once a second at most), counts them (Stats.Refused,
// Stats.Refusals) and subscribes them again every minute and with each
// new session, so an ACL put right is taken up within a minute. It wraps
// broker.ErrChangeKept: the caller need not repeat the change.
var ErrRefused = fmt.Errorf("redisbroker: channel refused by redis: %w", broker.ErrChangeKept)

// refusedRetry is how often channels Redis refused are tried again.
const refusedRetry = time.Minute

// ErrUnreachable is returned, wrapped with the failure that showed it, by
// Publish while Redis is known to be unreachable: the subscription
// connection was lost and Redis then refused (or did not answer) a new
// connection. Such publishes fail at once instead of each waiting out the
// client's own dial retries (go-redis's defaults take about 1.7 s against
// a refused port), until the subscription connection is back or one of
// the publishes let through, one at a time and 250 ms apart, succeeds.
var ErrUnreachable = errors.New("redisbroker: redis unreachable")

// patterns of ModePattern, and the channel prefixes they cover.
var patternPrefixes = []string{protocol.ChannelRoomPrefix, protocol.ChannelClientPrefix, protocol.ChannelUserPrefix}

var patterns = []string{protocol.ChannelRoomPattern, protocol.ChannelClientPattern, protocol.ChannelUserPattern}

// Broker is a broker.Broker on Redis pub/sub. Make one with New.
type Broker struct {
	client  redis.UniversalClient
	cluster *redis.ClusterClient // set when sharded on a cluster
	// onCluster is the client when it is a cluster client, whatever the
	// mode: its view of the slots is refreshed only when a command is
	// redirected, not when a master dies and its replica takes over, and
	// a stale view sent keyless commands such as PUBLISH to the dead node
	// every other time (a timeout, then 55 ms each, for as long as we
	// watched). The broker asks for a refresh after a failed publish and
	// before each reconnect.
	onCluster *redis.ClusterClient
	opts      Options
	log       *zap.Logger

	// op serialises everything that sends (un)subscribe commands, so the
	// set a new session subscribes to and later changes never cross. It is
	// a channel, not a mutex, so that a Subscribe queued behind a slow one
	// or a reconnect gives up when its context ends.
	op chan struct{}

	// publishes and checks run commands whose deadlines must hold with
	// any client (see package bounded): sharded publishes, and the
	// connect PING and loopback probes. Apart, so that publishes left
	// behind on a silent Redis cannot keep the checks that find it back
	// from running.
	publishes, checks *bounded.Runner

	mu   sync.Mutex
	want map[string]struct{} // channels held, pattern-covered ones included
	// wantPeak is the most channels want has held since it was last
	// built: a Go map never gives back the table of its peak, three
	// channels per connection in ModeAudience, so once it holds a small
	// fraction of that it is rebuilt.
	wantPeak int
	sess     *session
	// refused are the channels of want that Redis refused to subscribe
	// (see ErrRefused); nil while there are none.
	refused map[string]struct{}
	// refusedRetry is how often they are tried again (refusedRetry;
	// tests shorten it).
	refusedRetry time.Duration
	// unreachable, while shut, fails publishes at once (ErrUnreachable):
	// the session is gone and a new connection failed (see
	// noteUnreachable). Shut and opened under mu, with sess; read without.
	unreachable *failfast.Gate
	handler     broker.Handler
	started     bool
	closed      bool
	cancel      context.CancelFunc

	// heldPeak is the most channels held since the live session began:
	// go-redis keeps a PubSub's channels in a map of its own, which keeps
	// the table of its peak too, so once the session's channels are a
	// small fraction of it the session is renewed (see renew).
	heldPeak int
	// renewMin is the smallest heldPeak worth a renewal (minRenew; tests
	// lower it).
	renewMin int
	renewCh  chan struct{} // asks supervise for a renewal
	// beforeMarker, when set (tests), runs in a renewal just before the
	// marker is published.
	beforeMarker func()
	// afterSnapshot, when set (tests), runs in a connect just after it
	// has taken the set of channels for the new session.
	afterSnapshot func()

	queues  []chan delivery
	loops   sync.WaitGroup // supervisor and workers
	readers sync.WaitGroup // read loops of every session

	stats struct {
		received, dropped, published, publishErrors atomic.Uint64
		reconnects, probeFailures, sessions         atomic.Uint64
		renewals, refusals                          atomic.Uint64
	}
	dropLog logthrottle.Throttle
	// refuseLog and answerLog keep the warnings of channels refused and
	// of other error replies on the subscription connections to a line a
	// second.
	refuseLog, answerLog logthrottle.Throttle
	// lostLog and restoredLog keep the lines of a subscription that Redis
	// keeps cutting to one a second each.
	lostLog, restoredLog logthrottle.Throttle
	// onRestored is NotifyRestored's f.
	onRestored  atomic.Pointer[func(time.Duration)]
	queuedBytes atomic.Int64 // payload bytes in the workers' queues

	// Publishing: one goroutine pipelines the publishes of concurrent
	// callers (see publisher), started with the first one.
	pubOnce    sync.Once
	pubStarted atomic.Bool
	pubQ       chan *pubReq
	pubStop    chan struct{}
	pubDone    chan struct{}
}

// pubReq is one caller's publish, waiting for its batch.
type pubReq struct {
	channel  string
	payload  []byte
	deadline time.Time // past it the caller has given up: not sent
	err      error
	done     chan struct{} // buffered: the publisher never blocks on it
}

var pubReqPool = sync.Pool{New: func() any { return &pubReq{done: make(chan struct{}, 1)} }}

// errExpired is a publish's result when it waited past its deadline and was
// not sent.
var errExpired = fmt.Errorf("not sent: waited past its deadline: %w", context.DeadlineExceeded)

// maxPipeline bounds the publishes sent in one pipeline.
const maxPipeline = 512

// checkSlots bounds the connection checks (connect PINGs, probes, renewal
// markers) running at once.
const checkSlots = 4

type delivery struct {
	channel string
	payload string
}

var (
	_ broker.Broker          = (*Broker)(nil)
	_ broker.RestoreNotifier = (*Broker)(nil)
)

// New returns a broker on client. It does no I/O; Start connects. The
// broker never closes client, which its owner may share.
func New(client redis.UniversalClient, opts Options) *Broker {
	o := opts.withDefaults()
	b := &Broker{
		client:       client,
		opts:         o,
		log:          o.Logger.With(zap.String("broker", "redis"), zap.Stringer("mode", o.Mode)),
		want:         make(map[string]struct{}),
		op:           make(chan struct{}, 1),
		renewMin:     minRenew,
		refusedRetry: refusedRetry,
		renewCh:      make(chan struct{}, 1),
		publishes:    bounded.New(maxPipeline),
		checks:       bounded.New(checkSlots),
		unreachable:  failfast.New(),
	}
	cc, isCluster := client.(*redis.ClusterClient)
	if isCluster {
		b.onCluster = cc
		if o.Mode == ModeSharded {
			b.cluster = cc
		}
	}
	return b
}

// Mode is the broker's subscription mode.
func (b *Broker) Mode() Mode { return b.opts.Mode }

// leaveGone unsubscribes s from those of chans, the set s was made with
// (or, for the session a failed renewal leaves in place, holds), that an
// unsubscribe took off the set meanwhile: one that gave up waiting for
// the turn the caller holds (see change).
func (b *Broker) leaveGone(ctx context.Context, s *session, chans []string) error {
	b.mu.Lock()
	var gone []string
	for _, ch := range chans {
		if _, ok := b.want[ch]; !ok && !b.covered(ch) {
			gone = append(gone, ch)
		}
	}
	b.mu.Unlock()
	if len(gone) == 0 {
		return nil
	}
	if err := s.apply(ctx, false, gone); err != nil {
		return fmt.Errorf("unsubscribe what was left meanwhile: %w", err)
	}
	return nil
}

// dialCheckTimeout bounds the wait for the one dial with which a Start that
// ran out of time says why Redis could not be reached.
const dialCheckTimeout = time.Second

// Start checks Redis, subscribes to the channels held so far and begins
// calling h. It retries with backoff until ctx ends, so a Redis that is
// still starting is waited for; the error then carries the last failure.
// In ModeSharded on a cluster it opens connections only to the masters of
// the channels held: a later Subscribe whose master is down returns
// ErrUnavailable, and the change is subscribed once the shard is back (the
// server helper waits for it at start for ws:broadcast).
func (b *Broker) Start(ctx context.Context, h broker.Handler) error {
	if h == nil {
		return errors.New("redisbroker: start: nil handler")
	}
	if b.opts.Mode < ModeAudience || b.opts.Mode > ModeSharded {
		return fmt.Errorf("redisbroker: start: unknown mode %d", b.opts.Mode)
	}
	if _, ok := b.client.(*redis.Ring); ok {
		return ErrRing
	}
	b.mu.Lock()
	switch {
	case b.closed:
		b.mu.Unlock()
		return broker.ErrClosed
	case b.started:
		b.mu.Unlock()
		return errors.New("redisbroker: already started")
	}
	b.started = true
	b.handler = h
	runCtx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	b.queues = make([]chan delivery, b.opts.Workers)
	for i := range b.queues {
		b.queues[i] = make(chan delivery, b.opts.QueueSize)
	}
	b.loops.Add(len(b.queues))
	b.mu.Unlock()

	for _, q := range b.queues {
		go b.work(runCtx, q)
	}

	backoff := b.opts.ReconnectBackoffMin
	for {
		err := b.connect(ctx)
		if err == nil {
			break
		}
		if errors.Is(err, broker.ErrClosed) {
			cancel()
			b.loops.Wait()
			return err
		}
		if redisready.Permanent(err) || errors.Is(err, ErrClusterNode) {
			// Redis answered, and no wait will change the answer (an ACL
			// without SUBSCRIBE, a wrong password): fail now, saying so.
			cancel()
			b.loops.Wait()
			b.mu.Lock()
			b.started = false
			b.mu.Unlock()
			if errors.Is(err, ErrClusterNode) {
				return err // says it all, and names the package
			}
			return fmt.Errorf("redisbroker: start: %w", err)
		}
		b.log.Warn("redis not ready; retrying", zap.Error(err), zap.Duration("backoff", backoff))
		select {
		case <-ctx.Done():
			cancel()
			b.loops.Wait()
			b.mu.Lock()
			b.started = false
			b.mu.Unlock()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) && errors.Is(err, context.DeadlineExceeded) {
				// go-redis reports a ping cut short, not the dial that
				// kept failing under it: dial once to say what it was.
				dctx, dcancel := context.WithTimeout(context.Background(), dialCheckTimeout)
				derr := redisready.DialError(dctx, b.client)
				dcancel()
				if derr != nil {
					return fmt.Errorf("redisbroker: start: %w (last error: %v; %v)", ctx.Err(), err, derr)
				}
			}
			return fmt.Errorf("redisbroker: start: %w (last error: %v)", ctx.Err(), err)
		case <-runCtx.Done(): // Close while waiting for Redis
			b.loops.Wait()
			return broker.ErrClosed
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, b.opts.ReconnectBackoffMax)
	}
	if err := b.checkPublish(ctx); err != nil {
		b.mu.Lock()
		sess := b.sess
		b.sess, b.started = nil, false
		b.mu.Unlock()
		if sess != nil {
			sess.close()
		}
		cancel()
		b.loops.Wait()
		return fmt.Errorf("redisbroker: start: publish: %w", err)
	}
	b.mu.Lock()
	if b.closed { // Close ran after the session was installed
		b.mu.Unlock()
		cancel()
		b.loops.Wait()
		return broker.ErrClosed
	}
	b.loops.Add(1)
	b.mu.Unlock()
	go b.supervise(runCtx)
	b.log.Info("redis broker started")
	return nil
}

// connect pings Redis, builds a session subscribed to the channels held
// now and installs it.
func (b *Broker) connect(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, b.opts.PingTimeout)
	err := b.checks.Run(pctx, func(ctx context.Context) error { return b.client.Ping(ctx).Err() })
	cancel()
	if err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	pctx, cancel = context.WithTimeout(ctx, b.opts.PingTimeout)
	err = b.checkNotClusterNode(pctx)
	cancel()
	if err != nil {
		return err
	}
	if b.onCluster != nil {
		// The slot map the session is built on: fetched now, and waited
		// for (ReloadState only schedules a fetch, and the session was
		// then built on the map from before a failover).
		rctx, cancel := context.WithTimeout(ctx, b.opts.PingTimeout)
		err := b.checks.Run(rctx, func(ctx context.Context) error {
			return b.onCluster.ForEachMaster(ctx, func(context.Context, *redis.Client) error { return nil })
		})
		cancel()
		if err != nil {
			return fmt.Errorf("fetch the cluster's slot map: %w", err)
		}
	}
	if err := b.lockOp(ctx); err != nil {
		return err
	}
	defer b.unlockOp()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return broker.ErrClosed
	}
	chans := make([]string, 0, len(b.want))
	for ch := range b.want {
		chans = append(chans, ch)
	}
	b.mu.Unlock()
	if b.afterSnapshot != nil {
		b.afterSnapshot()
	}
	s := b.newSession()
	sctx, scancel := context.WithTimeout(ctx, b.opts.PingTimeout+time.Duration(len(chans)/1000+1)*time.Second)
	defer scancel()
	if err := s.init(sctx, chans); err != nil {
		s.close()
		return err
	}
	if err := b.leaveGone(sctx, s, chans); err != nil {
		s.close()
		return err
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		s.close()
		return broker.ErrClosed
	}
	b.sess = s
	b.unreachable.Open()
	b.heldPeak = len(chans)
	b.mu.Unlock()
	b.stats.sessions.Add(1)
	return nil
}

// checkPublish publishes once on the session's own probe channel, so that
// a Redis user without PUBLISH fails Start now rather than every send
// later (found in an operations trial). Only an answer no wait changes
// fails it; without a probe channel (sharded on a cluster) it is skipped.
func (b *Broker) checkPublish(ctx context.Context) error {
	b.mu.Lock()
	sess := b.sess
	b.mu.Unlock()
	if sess == nil || sess.probeCh == "" {
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, b.opts.PingTimeout)
	defer cancel()
	_, err := b.publishCheck(pctx, b.client, sess.probeCh, probeEnvelope(sess.probeCh, "0"))
	if err != nil && redisready.Permanent(err) {
		return err
	}
	return nil
}

// noteUnreachable fails publishes at once from now on, if err says Redis
// cannot be reached (a refused or timed-out connection, not an answer;
// with silence, a connect attempt's PING that got no answer either) while
// there is no session: both the subscription connection and a command
// then failed to reach it. The next session clears it. Not on a cluster,
// whose publishes may go to other nodes than the session's.
func (b *Broker) noteUnreachable(err error, silence bool) {
	var opErr *net.OpError
	if b.onCluster != nil || !errors.As(err, &opErr) && !(silence && errors.Is(err, context.DeadlineExceeded)) {
		return
	}
	b.mu.Lock()
	if b.sess == nil && !b.closed {
		b.unreachable.Shut(err)
	}
	b.mu.Unlock()
}

// supervise rebuilds the session whenever it dies, until ctx ends.
func (b *Broker) supervise(ctx context.Context) {
	defer b.loops.Done()
	retry := time.NewTicker(b.refusedRetry)
	defer retry.Stop()
	var backoff time.Duration // the last wait before a reconnect
	for {
		b.mu.Lock()
		s := b.sess
		b.mu.Unlock()
		if s == nil { // closed
			<-ctx.Done()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-b.renewCh:
			b.renew(ctx, s)
			continue
		case <-s.repairs: // ModeSharded on a cluster: one shard's fault
			b.mend(ctx, s)
			continue
		case <-retry.C:
			b.retryRefused(ctx, s)
			continue
		case <-s.dead:
		}
		cause := s.cause()
		lived := time.Since(s.born)
		backoff = b.firstBackoff(backoff, lived)
		if ok, held := b.lostLog.Allow(); ok {
			fields := []zap.Field{zap.Error(cause), zap.Duration("lived", lived.Round(time.Millisecond)),
				zap.Duration("backoff", backoff), zap.Uint64("suppressed", held)}
			if closedByRedis(cause) {
				fields = append(fields, zap.String("hint", closedHint))
			}
			b.log.Warn("redis subscription lost; reconnecting", fields...)
		}
		b.mu.Lock()
		if b.sess == s {
			b.sess = nil
		}
		b.mu.Unlock()
		s.close()
		lost := time.Now()
		var failed int       // attempts so far
		var logged time.Time // of the last warning
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(jitter(backoff)):
			}
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := b.connect(cctx)
			cancel()
			if err == nil {
				b.restored(time.Since(lost))
				if ok, held := b.restoredLog.Allow(); ok {
					b.log.Info("redis subscription restored", zap.Int("channels", b.Stats().Channels),
						zap.Duration("after", time.Since(lost).Round(time.Millisecond)), zap.Int("failedAttempts", failed),
						zap.Uint64("suppressed", held))
				}
				break
			}
			if ctx.Err() != nil {
				return
			}
			failed++
			b.noteUnreachable(err, true)
			// Attempts come every second or so for as long as Redis is
			// away: say so at once, then every reconnectLogEvery.
			if failed == 1 || time.Since(logged) >= reconnectLogEvery {
				logged = time.Now()
				b.log.Warn("redis reconnect failed", zap.Error(err), zap.Int("failedAttempts", failed),
					zap.Duration("since", time.Since(lost).Round(time.Millisecond)))
			}
			backoff = min(2*backoff, b.opts.ReconnectBackoffMax)
		}
	}
}

// noteSubscribed records the outcome of a subscribe Redis has answered:
// of chans, it refused those in refused (an ACL's NOPERM, rerr its
// answer) and subscribed the others. Refused channels still held are
// noted, counted and logged (see ErrRefused).
func (b *Broker) noteSubscribed(chans, refused []string, rerr error) {
	b.mu.Lock()
	if len(b.refused) > 0 {
		for _, ch := range chans {
			delete(b.refused, ch)
		}
		if len(b.refused) == 0 {
			b.refused = nil
		}
	}
	var noted []string
	for _, ch := range refused {
		if _, held := b.want[ch]; held { // not a probe or marker channel
			if b.refused == nil {
				b.refused = make(map[string]struct{})
			}
			b.refused[ch] = struct{}{}
			noted = append(noted, ch)
		}
	}
	now := len(b.refused)
	b.mu.Unlock()
	if len(noted) == 0 {
		return
	}
	b.stats.refusals.Add(uint64(len(noted)))
	if ok, held := b.refuseLog.Allow(); ok {
		b.log.Warn("redis refused to subscribe channels: the Redis user's ACL does not allow them (grant them with ACL SETUSER <user> &<pattern>, e.g. &ws:user:*); they are not subscribed, the others are, and they are tried again every minute",
			zap.String("channels", describe(noted)), zap.Int("count", len(noted)), zap.Int("refusedNow", now),
			zap.Error(rerr), zap.Uint64("suppressed", held))
	}
}

// retryRefused subscribes again, on s, the channels held that Redis
// refused (see ErrRefused), so that an ACL put right is taken up.
func (b *Broker) retryRefused(ctx context.Context, s *session) {
	b.mu.Lock()
	none := len(b.refused) == 0
	b.mu.Unlock()
	if none {
		return
	}
	if err := b.lockOp(ctx); err != nil {
		return
	}
	defer b.unlockOp()
	b.mu.Lock()
	if b.closed || b.sess != s {
		b.mu.Unlock()
		return
	}
	var chans []string
	for ch := range b.refused {
		chans = append(chans, ch)
	}
	b.mu.Unlock()
	if len(chans) == 0 {
		return
	}
	actx, cancel := context.WithTimeout(ctx, b.opts.PingTimeout+time.Duration(len(chans)/1000+1)*time.Second)
	err := s.apply(actx, true, chans)
	cancel()
	switch {
	case err == nil:
		b.log.Info("channels redis refused before are subscribed now", zap.String("channels", describe(chans)), zap.Int("count", len(chans)))
	case !errors.Is(err, ErrRefused):
		b.log.Debug("retry of channels redis refused failed", zap.Error(err))
	}
}

// stableSession is how long a session must have lived for the reconnect
// after its loss to start again from ReconnectBackoffMin.
const stableSession = 10 * time.Second

// firstBackoff is the step of the first wait before rebuilding a session
// that lived for lived, when the wait before the last reconnect had the
// step last (0 before any). A Redis that keeps cutting the subscription
// (an instance that falls behind it and passes client-output-buffer-limit
// pubsub: a chaos trial saw 29 cuts in 8 s) would otherwise be answered
// with a reconnect every ReconnectBackoffMin; the backoff grows on from
// where it was, up to ReconnectBackoffMax, until a session lasts
// stableSession.
func (b *Broker) firstBackoff(last, lived time.Duration) time.Duration {
	if last <= 0 || lived >= stableSession {
		return b.opts.ReconnectBackoffMin
	}
	return min(2*last, b.opts.ReconnectBackoffMax)
}

// closedByRedis reports a subscription lost because Redis closed the
// connection (end of file, or a reset), not to a probe nor to us.
func closedByRedis(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// closedHint goes with the warning of a subscription Redis closed.
const closedHint = "redis closed the connection: a restart, a CLIENT KILL, or, if it keeps happening while redis is up, " +
	"this instance falls behind what it subscribes to and redis cuts it at client-output-buffer-limit pubsub " +
	"(redis logs \"scheduled to be closed ASAP for overcoming of output buffer limits\"): raise the limit or the instance's capacity; " +
	"what is published until the subscription is back is lost"

// reconnectLogEvery spaces the warnings of a reconnect that keeps failing.
const reconnectLogEvery = 10 * time.Second

// jitter draws a wait between d/2 and d.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// work runs the handler for one queue.
func (b *Broker) work(ctx context.Context, q chan delivery) {
	defer b.loops.Done()
	h := b.handler
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-q:
			func() {
				defer func() {
					if r := recover(); r != nil {
						b.log.Error("broker handler panicked", zap.String("channel", d.channel), zap.Any("panic", r))
					}
				}()
				h(d.channel, []byte(d.payload))
			}()
			b.queuedBytes.Add(-int64(len(d.payload)))
		}
	}
}

// dispatch hands a message to its channel's worker without blocking.
func (b *Broker) dispatch(channel, payload string) {
	b.stats.received.Add(1)
	q := b.queues[0]
	if len(b.queues) > 1 {
		h := uint32(2166136261) // FNV-1a, inline to stay allocation-free
		for i := 0; i < len(channel); i++ {
			h = (h ^ uint32(channel[i])) * 16777619
		}
		q = b.queues[h%uint32(len(b.queues))]
	}
	size := int64(len(payload))
	queued := b.queuedBytes.Add(size)
	if queued > int64(b.opts.QueueBytes) && queued != size {
		b.queuedBytes.Add(-size)
		b.dropped(channel)
		return
	}
	select {
	case q <- delivery{channel, payload}:
	default:
		b.queuedBytes.Add(-size)
		b.dropped(channel)
	}
}

// dropped counts a message that found no room, and logs at most once a
// second.
func (b *Broker) dropped(channel string) {
	n := b.stats.dropped.Add(1)
	if ok, _ := b.dropLog.Allow(); ok {
		b.log.Error("broker queue full; dropping messages", zap.String("channel", channel), zap.Uint64("droppedTotal", n))
	}
}

// Publish sends payload on channel (SPUBLISH in ModeSharded). It returns
// within PublishTimeout (or ctx's deadline, if sooner), however many
// publishes wait behind one stuck on a Redis that stopped answering; a
// publish whose caller has given up while it waited is not sent at all. One
// already on its way may still reach Redis after the error, and after
// publishes made since, so payload must not be changed once passed. A
// publish is never sent twice: one whose reply a broken connection lost
// returns the error (it may have been delivered, once), where go-redis's
// own retry would have sent it again and returned nil (see the package
// doc); a nil return means Redis took it, once.
func (b *Broker) Publish(ctx context.Context, channel string, payload []byte) error {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return broker.ErrClosed
	}
	// One publish in a while goes through, to find Redis back as soon as
	// it is, before the subscription is rebuilt.
	probe, cause := b.unreachable.Admit()
	if cause != nil {
		b.stats.publishErrors.Add(1)
		return fmt.Errorf("redisbroker: publish %s: %w: %w", channel, ErrUnreachable, cause)
	}
	if probe {
		defer b.unreachable.Probed()
	}
	ctx, cancel := context.WithTimeout(ctx, b.opts.PublishTimeout)
	defer cancel()
	var err error
	if b.opts.Mode == ModeSharded {
		err = b.publishes.Run(ctx, func(ctx context.Context) error {
			n, err := publishonce.Publish(ctx, b.client, true, channel, payload)
			b.heardBy(channel, n, err)
			return err
		})
	} else {
		err = b.pipelined(ctx, channel, payload)
	}
	if err != nil {
		b.stats.publishErrors.Add(1)
		if b.onCluster != nil {
			b.onCluster.ReloadState(ctx) // in the background, once for a burst
		}
		b.noteUnreachable(err, false)
		return fmt.Errorf("redisbroker: publish %s: %w", channel, b.clusterHint(err))
	}
	if probe {
		b.unreachable.Open() // Redis took it: back
	}
	b.stats.published.Add(1)
	return nil
}

// Subscribe adds channels; it returns once Redis has confirmed them. While
// the connection is being rebuilt, or in ModeSharded on a cluster while
// the master of one of them cannot be reached, it returns ErrUnavailable,
// and they are subscribed once it can. Channels Redis refuses (NOPERM:
// the Redis user's ACL) are not subscribed: the error wraps ErrRefused
// and names them, and the others are subscribed.
func (b *Broker) Subscribe(ctx context.Context, channels ...string) error {
	return b.change(ctx, true, channels)
}

// Unsubscribe removes channels; it returns once Redis has confirmed.
func (b *Broker) Unsubscribe(ctx context.Context, channels ...string) error {
	return b.change(ctx, false, channels)
}

// lockOp takes op, or fails when ctx ends first.
func (b *Broker) lockOp(ctx context.Context) error {
	select {
	case b.op <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := ctx.Err(); err != nil {
		b.unlockOp() // both were ready: the caller has given up
		return err
	}
	return nil
}

func (b *Broker) unlockOp() { <-b.op }

func (b *Broker) change(ctx context.Context, add bool, channels []string) error {
	if len(channels) == 0 {
		return nil
	}
	// Wait for our turn no longer than the caller does, and give up
	// before changing anything: a subscribe that fails on its own context
	// leaves the set as it was. An unsubscribe is taken off the set all
	// the same, and the error says it was kept: a reconnect or a renewal
	// can hold the turn for seconds, and a caller that gave up on such
	// unsubscribes in numbers (the helper drops what it holds past 1024)
	// left the channels in the set, subscribed by every later session
	// (found in review). A reconnect or a renewal in flight unsubscribes
	// such channels from its new session (leaveGone).
	if err := b.lockOp(ctx); err != nil {
		if !add {
			b.mu.Lock()
			if !b.closed {
				for _, ch := range channels {
					delete(b.want, ch)
					delete(b.refused, ch)
				}
				b.compactWant()
				b.noteHeld()
				if b.sess != nil && b.sess.perNode() {
					// No new session will leave them: a repair after the
					// one that may hold the turn does (tidy).
					b.sess.needRepair()
				}
				b.mu.Unlock()
				return fmt.Errorf("redisbroker: wait to change subscriptions: %w (%w)", err, broker.ErrChangeKept)
			}
			b.mu.Unlock()
		}
		return fmt.Errorf("redisbroker: wait to change subscriptions: %w", err)
	}
	defer b.unlockOp()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return broker.ErrClosed
	}
	var send []string
	for _, ch := range channels {
		if add {
			b.want[ch] = struct{}{}
		} else {
			delete(b.want, ch)
			delete(b.refused, ch)
		}
		// A channel already held is sent again: harmless for Redis, and it
		// makes a retry after an uncertain failure effective.
		if !b.covered(ch) {
			send = append(send, ch)
		}
	}
	b.compactWant()
	b.noteHeld()
	s := b.sess
	started := b.started
	b.mu.Unlock()
	if len(send) == 0 {
		return nil
	}
	if !started {
		return nil // Start subscribes to everything held
	}
	if s == nil {
		return ErrUnavailable
	}
	verb := "subscribe"
	if !add {
		verb = "unsubscribe"
	}
	if err := s.apply(ctx, add, send); err != nil {
		if errors.Is(err, ErrRefused) {
			// The others are subscribed; the refused are noted, and
			// tried again later (see ErrRefused).
			return fmt.Errorf("redisbroker: %s %d channels: %w", verb, len(send), err)
		}
		if s.perNode() {
			// One shard's fault: the set keeps the change, and the repair
			// it asks for brings Redis in line once the shard is back.
			s.needRepair()
			return fmt.Errorf("redisbroker: %s %d channels: %w: %w", verb, len(send), ErrUnavailable, err)
		}
		return fmt.Errorf("redisbroker: %s %d channels: %w", verb, len(send), err)
	}
	return nil
}

// compactWant keeps want's table in proportion to what it holds (see
// wantPeak); b.mu is held.
func (b *Broker) compactWant() {
	n := len(b.want)
	if n > b.wantPeak {
		b.wantPeak = n
		return
	}
	if b.wantPeak < minCompact || n > b.wantPeak/4 {
		return
	}
	m := make(map[string]struct{}, n)
	for ch := range b.want {
		m[ch] = struct{}{}
	}
	b.want, b.wantPeak = m, n
}

// minCompact is the smallest peak for which want is rebuilt: below it
// the table is too small to matter.
const minCompact = 4096

// pipelined hands a publish to the publisher goroutine and waits for its
// result. Concurrent publishes (every instance's fan-outs, echo replies of
// many clients) then share round trips: while one pipeline is in flight the
// next batch gathers, so the cost per publish falls as load rises, as with
// the auto-pipelining Redis client of the original.
func (b *Broker) pipelined(ctx context.Context, channel string, payload []byte) error {
	b.pubOnce.Do(b.startPublisher)
	r := pubReqPool.Get().(*pubReq)
	r.channel, r.payload, r.err = channel, payload, nil
	r.deadline, _ = ctx.Deadline()
	select {
	case b.pubQ <- r:
	case <-ctx.Done():
		pubReqPool.Put(r)
		return ctx.Err()
	case <-b.pubDone:
		pubReqPool.Put(r)
		return broker.ErrClosed
	}
	select {
	case <-r.done:
		err := r.err
		r.channel, r.payload, r.err = "", nil, nil
		pubReqPool.Put(r)
		return err
	case <-ctx.Done():
		return ctx.Err() // r is left to the publisher and the collector
	case <-b.pubDone:
		return broker.ErrClosed
	}
}

func (b *Broker) startPublisher() {
	b.pubQ = make(chan *pubReq, 4096)
	b.pubStop = make(chan struct{})
	b.pubDone = make(chan struct{})
	b.pubStarted.Store(true)
	go b.publisher()
}

// publisher sends queued publishes, all that are waiting in one pipeline.
func (b *Broker) publisher() {
	defer close(b.pubDone)
	batch := make([]*pubReq, 0, 64)
	cmds := make([]*redis.IntCmd, 0, 64)
	for {
		select {
		case r := <-b.pubQ:
			batch = append(batch, r)
		case <-b.pubStop:
			for {
				select {
				case r := <-b.pubQ:
					r.err = broker.ErrClosed
					r.done <- struct{}{}
				default:
					return
				}
			}
		}
	gather:
		for len(batch) < maxPipeline {
			select {
			case r := <-b.pubQ:
				batch = append(batch, r)
			default:
				break gather
			}
		}
		// Publishes whose callers have given up while they waited behind a
		// stuck pipeline are not sent late.
		now, taken, live := time.Now(), len(batch), batch[:0]
		for _, r := range batch {
			if !r.deadline.IsZero() && now.After(r.deadline) {
				r.err = errExpired
				r.done <- struct{}{}
				continue
			}
			live = append(live, r)
		}
		clear(batch[len(live):taken])
		batch = live
		if len(batch) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), b.opts.PublishTimeout)
		if b.onCluster != nil {
			b.sendRouted(ctx, batch)
		} else {
			cmds = b.sendVia(ctx, b.client, batch, cmds)
		}
		cancel()
		for _, r := range batch {
			r.done <- struct{}{}
		}
		clear(batch)
		batch = batch[:0]
	}
}

// sendVia publishes batch through c, in one command or one pipeline, and
// sets each request's error; cmds is scratch space, returned for reuse.
// Neither is sent twice: go-redis would send a publish again whose reply
// a broken connection lost (see package publishonce); only a pipeline
// that never reached Redis (a failed dial) is tried again.
func (b *Broker) sendVia(ctx context.Context, c redis.UniversalClient, batch []*pubReq, cmds []*redis.IntCmd) []*redis.IntCmd {
	if len(batch) == 1 {
		n, err := publishonce.Publish(ctx, c, false, batch[0].channel, batch[0].payload)
		b.heardBy(batch[0].channel, n, err)
		batch[0].err = err
		return cmds
	}
	for attempt := 0; ; attempt++ {
		pipe := c.Pipeline()
		for _, r := range batch {
			wrapped, cmd := publishonce.New(ctx, false, r.channel, r.payload)
			_ = pipe.Process(ctx, wrapped)
			cmds = append(cmds, cmd)
		}
		_, err := pipe.Exec(ctx)
		if err == nil || !publishonce.Again(ctx, c, err, attempt) {
			break
		}
		clear(cmds)
		cmds = cmds[:0]
	}
	for i, r := range batch {
		n, err := cmds[i].Result()
		b.heardBy(r.channel, n, err)
		r.err = err
	}
	clear(cmds)
	return cmds[:0]
}

// sendRouted publishes batch on a cluster, each channel on the master
// that owns its slot. A classic PUBLISH may go to any node, which forwards
// it to the others over the cluster bus, and go-redis sends a command
// without keys to the next master in turn: two publishes on one channel
// then took different paths and could arrive out of order (a chat's
// messages swapped, seen after a failover). Through one node, a channel's
// messages keep their order. Nodes are sent to at once.
func (b *Broker) sendRouted(ctx context.Context, batch []*pubReq) {
	var order []*redis.Client
	groups := make(map[*redis.Client][]*pubReq)
	for _, r := range batch {
		node, err := b.onCluster.MasterForKey(ctx, r.channel)
		if err != nil {
			r.err = err
			continue
		}
		if _, ok := groups[node]; !ok {
			order = append(order, node)
		}
		groups[node] = append(groups[node], r)
	}
	if len(order) == 1 {
		b.sendVia(ctx, order[0], groups[order[0]], nil)
		return
	}
	var wg sync.WaitGroup
	for _, node := range order {
		wg.Go(func() { b.sendVia(ctx, node, groups[node], nil) })
	}
	wg.Wait()
}

// countsAll reports whether what Redis answers a publish counts every
// subscriber that received it, this instance's own subscription included
// (see heardBy). A classic PUBLISH on a cluster counts the subscribers of
// the node that took it only.
func (b *Broker) countsAll() bool { return b.onCluster == nil || b.opts.Mode == ModeSharded }

// heardBy looks at what Redis answered a publish: the number of
// subscribers that received it. This instance is one of them for every
// channel it holds, so none at all says its subscription connection is not
// where its publishes go (a failover that moved the client's pool, not its
// pub/sub connections), or that the channel's subscription is still on its
// way: the connection is probed at once rather than after ProbeInterval of
// silence. On a cluster outside ModeSharded the count is the node's only,
// and says nothing.
func (b *Broker) heardBy(channel string, receivers int64, err error) {
	if err != nil || receivers > 0 || !b.countsAll() {
		return
	}
	b.mu.Lock()
	_, held := b.want[channel]
	if _, refused := b.refused[channel]; refused {
		held = false // not subscribed: none is right
	}
	s := b.sess
	b.mu.Unlock()
	// Without a probe channel (ModeSharded on a cluster) the probe is a
	// PING, which cannot tell.
	if s != nil && s.probeCh != "" && (held || b.covered(channel)) {
		s.probeSoon()
	}
}

// ReceivesAll is true in ModePattern: the patterns already bring every
// room, client and user channel, so the helper need not follow its audience
// (see broker.Firehose).
func (b *Broker) ReceivesAll() bool { return b.opts.Mode == ModePattern }

// covered reports whether ModePattern's patterns already receive ch.
func (b *Broker) covered(ch string) bool {
	if b.opts.Mode != ModePattern {
		return false
	}
	for _, p := range patternPrefixes {
		if strings.HasPrefix(ch, p) {
			return true
		}
	}
	return false
}

// Close stops delivery and closes the subscription connections. It does
// not close the Redis client. It is idempotent. It does not wait for a
// publish stuck on a Redis that stopped answering beyond PublishTimeout,
// nor for a reconnect's PING, whatever the client's ReadTimeout: such a
// command ends within the client's own timeouts, or when its owner closes
// the client.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	s := b.sess
	b.sess = nil
	cancel := b.cancel
	b.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	b.loops.Wait()
	b.op <- struct{}{} // a connect in flight has finished and seen closed
	b.unlockOp()
	if s != nil {
		s.close()
	}
	b.readers.Wait()
	// A Publish that passed the closed check before Close may be about to
	// start the publisher: settle pubOnce here, so that it either started
	// already (and is stopped below) or never will, and the publish finds
	// it closed.
	b.pubOnce.Do(func() {
		b.pubDone = make(chan struct{})
		close(b.pubDone)
	})
	if b.pubStarted.Load() {
		close(b.pubStop)
		// A pipeline stuck on a Redis that stopped answering ends within
		// the client's own timeouts, which may be long or none: its
		// callers have had their errors at PublishTimeout, and Close
		// waits no longer than that either.
		t := time.NewTimer(b.opts.PublishTimeout)
		select {
		case <-b.pubDone:
		case <-t.C:
			b.log.Warn("redis broker closed with a publish still waiting for redis; it ends within the client's timeouts")
		}
		t.Stop()
	}
	return nil
}

// Stats are the broker's counters.
type Stats struct {
	// Connected reports whether a subscription session is live;
	// Unreachable, whether publishes fail at once because Redis was found
	// unreachable (see ErrUnreachable). In ModeSharded on a cluster the
	// session outlives the fault of a shard, whose channels alone are
	// lost meanwhile: Connected stays true and Degraded tells.
	Connected, Unreachable bool
	// Degraded is true, in ModeSharded on a cluster, while some channels
	// held may lack their subscription: a master's connection was lost
	// (dead, paused, failed over) or a slot moved, and the broker is
	// subscribing them again where the slot map, fetched again, says
	// they live. The other masters' channels are delivered meanwhile.
	Degraded bool
	// Channels is the number of channels held (pattern-covered ones
	// included, and refused ones).
	Channels int
	// Refused is the number of channels held that Redis refused to
	// subscribe (NOPERM: the Redis user's ACL does not allow them), which
	// are not subscribed (see ErrRefused); Refusals counts every such
	// refusal since Start.
	Refused  int
	Refusals uint64
	// Received counts messages read from Redis; Dropped, those lost to a
	// full worker queue.
	Received, Dropped uint64
	// Published and PublishErrors count publishes.
	Published, PublishErrors uint64
	// Sessions counts subscription sessions built (1 after Start);
	// Reconnects, the ones that replaced a lost session, and in
	// ModeSharded on a cluster the repairs that subscribed a shard's
	// channels again (the session itself lives on); Renewals, the
	// ones that replaced a live session once a crowd of channels had gone
	// (see the package doc); ProbeFailures, sessions found dead by a
	// probe.
	Sessions, Reconnects, Renewals, ProbeFailures uint64
}

// Connected reports whether the broker reaches Redis now: a live
// subscription session, and Redis not found unreachable.
func (b *Broker) Connected() bool {
	b.mu.Lock()
	live := b.sessionLiveLocked()
	b.mu.Unlock()
	return live && !b.unreachable.IsShut()
}

// sessionLiveLocked reports whether a session is live; b.mu is held. A
// perNode session outlives its connections (each is mended on its own),
// so with channels held it counts as live while it has one at least: a
// whole cluster down is not connected.
func (b *Broker) sessionLiveLocked() bool {
	s := b.sess
	if s == nil {
		return false
	}
	if !s.perNode() || len(b.want) == 0 {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns) > 0
}

// Dropped is Stats().Dropped, the messages read from Redis and lost to a
// full worker queue: the helper's Stats.BrokerDropped.
func (b *Broker) Dropped() uint64 { return b.stats.dropped.Load() }

// Stats returns the current counters.
func (b *Broker) Stats() Stats {
	b.mu.Lock()
	st := Stats{Connected: b.sessionLiveLocked(), Unreachable: b.unreachable.IsShut(), Channels: len(b.want), Refused: len(b.refused)}
	if b.sess != nil {
		st.Degraded = b.sess.degraded.Load()
	}
	b.mu.Unlock()
	st.Received = b.stats.received.Load()
	st.Dropped = b.stats.dropped.Load()
	st.Published = b.stats.published.Load()
	st.PublishErrors = b.stats.publishErrors.Load()
	st.Sessions = b.stats.sessions.Load()
	st.Reconnects = b.stats.reconnects.Load()
	st.Renewals = b.stats.renewals.Load()
	st.ProbeFailures = b.stats.probeFailures.Load()
	st.Refusals = b.stats.refusals.Load()
	return st
}

// Channels returns the channels held, sorted.
func (b *Broker) Channels() []string {
	b.mu.Lock()
	out := make([]string, 0, len(b.want))
	for ch := range b.want {
		out = append(out, ch)
	}
	b.mu.Unlock()
	sort.Strings(out)
	return out
}

// Package emitter publishes WebSocket messages from processes that hold no
// sockets (workers, cron jobs, other services) to the clients connected to
// any server instance sharing the Redis. It writes the same envelopes on the
// same channels as the Ignis WebSocketEmitter (serverId "emitter"), so it
// reaches our servers and Ignis servers alike, and an Ignis emitter reaches
// ours.
//
// Without fx:
//
//	e, err := emitter.New(rdb, emitter.Options{})
//	if err != nil { … }
//	if err := e.Start(ctx); err != nil { … } // waits for Redis
//	err = e.ToRoom(ctx, "jobs", "progress", map[string]int{"pct": 40})
//
// With fx, see Module.
//
// A send returns nil once Redis has taken its message, once. One whose
// reply is lost (the connection cut after Redis executed it) returns the
// error, and the message was delivered once or not at all: go-redis's
// own retry (MaxRetries), which sent such a publish again, delivered it
// twice and returned nil (found in a chaos trial), is not used for
// publishes, and the client's options are left as they are. A dial that
// failed, which sent nothing, is still retried as MaxRetries says.
package emitter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxws/websocket/internal/bounded"
	"github.com/fxws/websocket/internal/failfast"
	"github.com/fxws/websocket/internal/logthrottle"
	"github.com/fxws/websocket/internal/nilref"
	"github.com/fxws/websocket/internal/publishonce"
	"github.com/fxws/websocket/internal/redisready"
	"github.com/fxws/websocket/protocol"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Options tunes an emitter. Zero values mean the defaults.
type Options struct {
	// Identifier names the emitter in logs. Default "WebSocketEmitter".
	Identifier string
	// Sharded publishes with SPUBLISH, for fleets whose servers run
	// redisbroker.ModeSharded on a Redis Cluster. Ignis servers do not
	// receive sharded messages; leave it off to reach them.
	Sharded bool
	// PublishTimeout bounds one publish, also against a Redis that stopped
	// answering with a client made without ContextTimeoutEnabled. Default
	// 2 s.
	PublishTimeout time.Duration
	// ReadyTimeout bounds how long Start waits for Redis to answer, as the
	// original waits for its connection to be ready. Default 30 s.
	ReadyTimeout time.Duration
	// MaxEnvelopeLength is the largest envelope, in bytes, a send may
	// publish: a larger one fails with ErrEnvelopeTooLarge, as the servers
	// would drop it (helper.Options.MaxEnvelopeLength: give both the same
	// value). Default 16 MiB (protocol.DefaultMaxEnvelopeLength);
	// negative: no limit.
	MaxEnvelopeLength int
	// Logger receives start and stop events, and warnings (Redis
	// unreachable, sends that failed for another reason, such as an
	// answer from Redis: a password, an ACL, BUSY; a broadcast no server
	// heard), each at most once a second with the count held back.
	// Default: none.
	Logger *zap.Logger
}

// ErrNoRedis is returned by New without a Redis client, as the original
// throws "Invalid redis connection!".
var ErrNoRedis = errors.New("emitter: invalid redis connection: nil client")

// ErrRing is returned by New for a redis.Ring: it spreads channels over
// servers that do not share pub/sub, so a message would be published where
// the servers may not listen.
var ErrRing = errors.New("emitter: a redis.Ring spreads channels over servers that do not share pub/sub; give a redis.Client (NewFailoverClient for Sentinel) or a redis.ClusterClient")

// ErrUnreachable is returned, wrapped with the failure that showed it, by
// the sends made while Redis is known to be unreachable: a publish failed
// to connect, or got no answer within PublishTimeout. They fail at once
// instead of each waiting out its PublishTimeout, so that a loop sending
// one message after another keeps its pace and its messages are dropped,
// not delayed for seconds. One send every 250 ms still goes through, and
// the first that Redis takes ends it. Not on a cluster, whose channels
// live on different masters.
var ErrUnreachable = errors.New("emitter: redis unreachable")

// ErrEnvelopeTooLarge is returned by a send whose envelope is over
// Options.MaxEnvelopeLength: nothing was published.
var ErrEnvelopeTooLarge = errors.New("emitter: envelope over MaxEnvelopeLength")

// unreachableFresh is how long after a failed send Stats().Unreachable
// still says so.
const unreachableFresh = time.Second

// WebSocketEmitter publishes envelopes for the server instances. It is
// safe for concurrent use. It never closes the Redis client, which belongs
// to the caller.
type WebSocketEmitter struct {
	client redis.UniversalClient
	opts   Options
	log    *zap.Logger

	// commands runs every Redis command, so that PublishTimeout and
	// ReadyTimeout hold with any client (see package bounded); it caps
	// the commands left behind by callers that gave up.
	commands *bounded.Runner
	// behind, when not nil, is closed once every send that returned its
	// timeout while its command went on has ended (see waitBehind).
	behindMu sync.Mutex
	behind   chan struct{}

	published, publishErrors, noReceivers atomic.Uint64

	// unreachable, while shut, fails sends at once (ErrUnreachable).
	unreachable *failfast.Gate

	// unheardBroadcast keeps the warning of broadcasts no server heard to
	// a line a second, failLog that of failed sends.
	unheardBroadcast, failLog logthrottle.Throttle
	// troubleAt is when a send last failed, or succeeded again after
	// Redis was unreachable (unix nanoseconds).
	troubleAt atomic.Int64
}

// quietAfterTrouble is how long after a failed send, or Redis found
// reachable again, a broadcast that reached no server is not warned of:
// the servers may still be subscribing again after the fault.
const quietAfterTrouble = 5 * time.Second

// Stats are the emitter's counters since it was made.
type Stats struct {
	// Published counts the envelopes Redis took; PublishErrors, the
	// publishes that failed (Redis unreachable, PublishTimeout, an ACL).
	// Envelopes refused before any publish (an empty event, data
	// encoding/json cannot encode) are in neither.
	Published, PublishErrors uint64
	// Unreachable is true while Redis is known to be unreachable: a send
	// found it so within the last second, and sends fail at once
	// (ErrUnreachable). With no sends, it turns false a second after the
	// last one that failed, as nothing then shows Redis is still away (a
	// readiness check gated on it must not keep the traffic that would
	// find Redis back from coming).
	Unreachable bool
	// NoReceivers counts the part of Published that no subscriber got.
	// When every server is ours in redisbroker.ModeAudience (the default)
	// or ModeSharded, that is a user with no connection anywhere, a room
	// with no member, a client id held nowhere; a broadcast always has
	// receivers while any instance is connected. With servers in
	// ModePattern, or original (Ignis) instances on the same Redis, whose
	// pattern subscriptions hear every target, it counts only what was
	// published while no instance was connected to Redis. Not counted on
	// a cluster with classic PUBLISH, whose answer covers one node only.
	NoReceivers uint64
}

// Stats returns the emitter's counters, for metrics.
func (e *WebSocketEmitter) Stats() Stats {
	return Stats{
		Published:     e.published.Load(),
		PublishErrors: e.publishErrors.Load(),
		NoReceivers:   e.noReceivers.Load(),
		Unreachable:   e.unreachable.ShutWithin(unreachableFresh),
	}
}

// maxInflight caps the commands running at once; past it, callers wait
// for a slot within their own deadline.
const maxInflight = 4096

// Validate reports every option that cannot work: a negative timeout
// (zero means the default).
func (o Options) Validate() error {
	var errs []error
	if o.PublishTimeout < 0 {
		errs = append(errs, fmt.Errorf("PublishTimeout must not be negative, got %v", o.PublishTimeout))
	}
	if o.ReadyTimeout < 0 {
		errs = append(errs, fmt.Errorf("ReadyTimeout must not be negative, got %v", o.ReadyTimeout))
	}
	return errors.Join(errs...)
}

// New returns an emitter on client. It does no I/O.
func New(client redis.UniversalClient, opts Options) (*WebSocketEmitter, error) {
	if nilref.Is(client) { // a nil *redis.Client would panic at the first publish
		return nil, ErrNoRedis
	}
	if _, ok := client.(*redis.Ring); ok {
		return nil, ErrRing
	}
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("emitter: invalid options: %w", err)
	}
	if opts.Identifier == "" {
		opts.Identifier = "WebSocketEmitter"
	}
	if opts.PublishTimeout <= 0 {
		opts.PublishTimeout = 2 * time.Second
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 30 * time.Second
	}
	if opts.MaxEnvelopeLength == 0 {
		opts.MaxEnvelopeLength = protocol.DefaultMaxEnvelopeLength
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	return &WebSocketEmitter{
		client:      client,
		opts:        opts,
		log:         opts.Logger.With(zap.String("emitter", opts.Identifier)),
		commands:    bounded.New(maxInflight),
		unreachable: failfast.New(),
	}, nil
}

// Start waits until Redis answers PING, retrying until ReadyTimeout or ctx
// ends, and returns the last failure if it never does. An answer no wait
// will change (a wrong password, an ACL, a Redis in protected mode) and a
// closed client fail it at once. With a deadline on
// ctx (fx's start timeout) it gives up a little before it, so that the
// error says why Redis was not ready rather than only that time ran out.
func (e *WebSocketEmitter) Start(ctx context.Context) error {
	err := e.commands.Retry(ctx, e.opts.ReadyTimeout, 2*time.Second,
		func(ctx context.Context) error { return redisready.Ping(ctx, e.client) },
		redisready.Permanent) // a password, an ACL, protected mode, a closed client: no wait helps
	var gaveUp *bounded.GaveUp
	if errors.As(err, &gaveUp) {
		return fmt.Errorf("emitter: redis did not answer PING within %v: %w", gaveUp.Wait, gaveUp.Last)
	}
	if err != nil {
		return fmt.Errorf("emitter: redis failed PING: %w", err)
	}
	e.log.Info("websocket emitter ready")
	return nil
}

// Stop logs the shutdown. The Redis client is the caller's to close.
func (e *WebSocketEmitter) Stop(context.Context) error {
	e.log.Info("websocket emitter stopped")
	return nil
}

// ToClient sends event to one client, on whichever instance holds it
// (channel ws:client:<clientId>).
func (e *WebSocketEmitter) ToClient(ctx context.Context, clientID, event string, data any) error {
	if clientID == "" {
		return errors.New("emitter: ToClient: empty client id")
	}
	return e.publish(ctx, protocol.TypeClient, clientID, event, data, nil)
}

// ToUser sends event to every connection of a user on every instance
// (channel ws:user:<userId>).
func (e *WebSocketEmitter) ToUser(ctx context.Context, userID, event string, data any) error {
	if userID == "" {
		return errors.New("emitter: ToUser: empty user id")
	}
	return e.publish(ctx, protocol.TypeUser, userID, event, data, nil)
}

// ToRoom sends event to the members of a room on every instance, except
// the clients in exclude (channel ws:room:<room>).
func (e *WebSocketEmitter) ToRoom(ctx context.Context, room, event string, data any, exclude ...string) error {
	if room == "" {
		return errors.New("emitter: ToRoom: empty room")
	}
	return e.publish(ctx, protocol.TypeRoom, room, event, data, exclude)
}

// Broadcast sends event to every authenticated client of every instance
// (channel ws:broadcast).
func (e *WebSocketEmitter) Broadcast(ctx context.Context, event string, data any) error {
	return e.publish(ctx, protocol.TypeBroadcast, "", event, data, nil)
}

// methodOf names the method that sends typ, for errors.
func methodOf(typ protocol.MessageType) string {
	switch typ {
	case protocol.TypeClient:
		return "ToClient"
	case protocol.TypeUser:
		return "ToUser"
	case protocol.TypeRoom:
		return "ToRoom"
	case protocol.TypeDisconnectUser:
		return "DisconnectUser"
	case protocol.TypeDisconnectClient:
		return "DisconnectClient"
	case protocol.TypeJoinUser:
		return "AddUserToRooms"
	case protocol.TypeLeaveUser:
		return "RemoveUserFromRooms"
	}
	return "Broadcast"
}

// DisconnectUser closes every connection of a user on every instance of
// this library (an extension: a ban from a worker, a "log out
// everywhere"), with code and reason in the close frame, but for the
// connections whose client ids are in except; also those whose
// authentication as the user is under way, once it completes. It travels
// on the broadcast channel, which every instance hears. Instances of the
// original ignore it.
func (e *WebSocketEmitter) DisconnectUser(ctx context.Context, userID string, code int, reason string, except ...string) error {
	if userID == "" {
		return errors.New("emitter: DisconnectUser: empty user id")
	}
	if !protocol.ValidCloseCode(code) {
		return fmt.Errorf("emitter: DisconnectUser: %w: %d is not a close code an endpoint may send", protocol.ErrInvalidCloseCode, code)
	}
	if len(except) == 0 {
		except = nil // no empty exclude member in the envelope
	}
	return e.publish(ctx, protocol.TypeDisconnectUser, userID, protocol.EventDisconnect,
		protocol.DisconnectData{Code: code, Reason: reason}, except)
}

// AddUserToRooms puts every connection of a user, on every instance of
// this library, in rooms (an extension: a user added to a channel by a
// worker). No room check runs on the servers; connections the user opens
// later get the rooms their authentication gives them, and one whose
// authentication is under way joins them once it completes (so change the
// store the authenticate handler reads first). What is then sent to the
// user with ToUser (the room's state) reaches each instance after the
// join. It is published twice, with one order id: on the broadcast
// channel, which a server where the user is still authenticating hears,
// then on the user's channel; each server applies the copy that comes
// first. Every name must be a room a client could
// join (protocol.ValidRoomName); servers skip one named like a client id
// unless their Options.AllowClientIDRooms. A server with
// Options.RoomsChangedByServer tells its rooms-changed handler of the rooms
// each connection there joined (once, whichever copy applied them).
// Instances of the original ignore it.
func (e *WebSocketEmitter) AddUserToRooms(ctx context.Context, userID string, rooms ...string) error {
	return e.userRooms(ctx, protocol.TypeJoinUser, protocol.EventJoin, userID, rooms)
}

// RemoveUserFromRooms takes every connection of a user, on every instance
// of this library, out of rooms (an extension: a kick or a ban from a
// channel): as AddUserToRooms.
func (e *WebSocketEmitter) RemoveUserFromRooms(ctx context.Context, userID string, rooms ...string) error {
	return e.userRooms(ctx, protocol.TypeLeaveUser, protocol.EventLeave, userID, rooms)
}

func (e *WebSocketEmitter) userRooms(ctx context.Context, typ protocol.MessageType, event, userID string, rooms []string) error {
	if userID == "" {
		return fmt.Errorf("emitter: %s: empty user id", methodOf(typ))
	}
	if len(rooms) == 0 {
		return fmt.Errorf("emitter: %s: no rooms", methodOf(typ))
	}
	for _, r := range rooms {
		if !protocol.ValidRoomName(r) {
			return fmt.Errorf("emitter: %s: %q is not a room a client may be in", methodOf(typ), r)
		}
	}
	// Twice, with one order id (see protocol.TypeJoinUser): on the
	// broadcast channel for a server where the user's connection is still
	// authenticating, then on the user's channel, ahead of what is sent
	// to the user after it.
	data := protocol.RoomsData{Rooms: rooms, Order: uuid.NewString()}
	if _, err := e.send(ctx, protocol.ChannelBroadcast, typ, userID, event, data, nil); err != nil {
		return err
	}
	_, err := e.send(ctx, typ.Channel(userID), typ, userID, event, data, nil)
	return err
}

// Publish sends event to the audience of typ (one of the original's four
// types: protocol.MessageType.Valid) and target, as ToClient, ToUser,
// ToRoom and Broadcast do, and returns how many Redis subscribers took
// it. With every server ours in redisbroker.ModeAudience (the default) or
// ModeSharded, that is the number of instances holding the target: 0 for
// a user connected nowhere, a room with no member, a client id held
// nowhere (as a device's command service needs to know). Servers that
// subscribe by pattern (ModePattern, the original's instances) count
// whatever the target. -1 where Redis does not say: a cluster with
// classic PUBLISH, whose answer covers one node only. exclude is as
// ToRoom's, for rooms and broadcasts.
//
// A count is a moment's: a server that took the message may have lost
// the client since, and one that gets it a moment later is not counted.
func (e *WebSocketEmitter) Publish(ctx context.Context, typ protocol.MessageType, target, event string, data any, exclude ...string) (int, error) {
	if err := checkAudience("Publish", typ, target); err != nil {
		return 0, err
	}
	if event == "" {
		return 0, errors.New("emitter: Publish: empty event")
	}
	if typ == protocol.TypeBroadcast {
		target = ""
	}
	if len(exclude) == 0 {
		exclude = nil
	}
	return e.send(ctx, typ.Channel(target), typ, target, event, data, exclude)
}

func (e *WebSocketEmitter) publish(ctx context.Context, typ protocol.MessageType, target, event string, data any, exclude []string) error {
	_, err := e.send(ctx, typ.Channel(target), typ, target, event, data, exclude)
	return err
}

// waitBehind waits, within ctx, for the sends that returned their timeout
// while their command went on: such a command may still reach Redis, and a
// later send must not overtake it (a soak saw an emitter's sends 254 and 503
// arrive after 256 and 504, at every client). A caller's next send after a
// timeout therefore fails too while the earlier one is still under way
// (Redis silent), which the unreachable gate does anyway.
func (e *WebSocketEmitter) waitBehind(ctx context.Context) error {
	e.behindMu.Lock()
	b := e.behind
	e.behindMu.Unlock()
	if b == nil {
		return nil
	}
	select {
	case <-b:
		e.behindMu.Lock()
		if e.behind == b {
			e.behind = nil
		}
		e.behindMu.Unlock()
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// leaveBehind records a send whose command goes on after its caller was
// told it timed out: later sends wait for it, and for those before it.
func (e *WebSocketEmitter) leaveBehind(left <-chan struct{}) {
	e.behindMu.Lock()
	defer e.behindMu.Unlock()
	prev := e.behind
	all := make(chan struct{})
	go func() {
		<-left
		if prev != nil {
			<-prev
		}
		close(all)
	}()
	e.behind = all
}

// send publishes one envelope on ch (typ's channel for target, but for the
// broadcast copy of a join-user or leave-user order) and returns how many
// subscribers took it, -1 where Redis does not say.
func (e *WebSocketEmitter) send(ctx context.Context, ch string, typ protocol.MessageType, target, event string, data any, exclude []string) (int, error) {
	if event == "" {
		return 0, fmt.Errorf("emitter: %s: empty event", methodOf(typ))
	}
	payload, err := encode(typ, target, event, data, exclude)
	if err != nil {
		return 0, err
	}
	if max := e.opts.MaxEnvelopeLength; max > 0 && len(payload) > max {
		return 0, fmt.Errorf("emitter: %s: %w: %d bytes, the limit is %d (the servers would drop it)", methodOf(typ), ErrEnvelopeTooLarge, len(payload), max)
	}
	probe, cause := e.unreachable.Admit()
	if cause != nil {
		e.publishErrors.Add(1)
		return 0, fmt.Errorf("emitter: publish to %s: %w: %w", ch, ErrUnreachable, cause)
	}
	if probe {
		defer e.unreachable.Probed()
	}
	callerCtx := ctx
	ctx, cancel := context.WithTimeout(ctx, e.opts.PublishTimeout)
	defer cancel()
	if err := e.waitBehind(ctx); err != nil {
		e.publishErrors.Add(1)
		return 0, fmt.Errorf("emitter: publish to %s: an earlier send that timed out is still under way: %w", ch, err)
	}
	receivers := int64(-1) // not known
	left, err := e.commands.RunLeaving(ctx, func(ctx context.Context) error {
		// Not through go-redis's retries, which sent again a publish
		// whose reply a broken connection lost: delivered twice, and
		// nil returned (see package publishonce).
		if e.opts.Sharded {
			n, err := publishonce.Publish(ctx, e.client, true, ch, payload)
			receivers = n
			return err
		}
		if cc, ok := e.client.(*redis.ClusterClient); ok {
			// A classic PUBLISH may go to any node of a cluster, which
			// forwards it over the cluster bus, and go-redis sends a
			// command without keys to the next master in turn: two
			// publishes on one channel could arrive out of order. Each
			// channel goes through the master owning its slot.
			node, err := cc.MasterForKey(ctx, ch)
			if err != nil {
				return err
			}
			_, err = publishonce.Publish(ctx, node, false, ch, payload)
			return err
		}
		n, err := publishonce.Publish(ctx, e.client, false, ch, payload)
		receivers = n
		return err
	})
	if left != nil {
		e.leaveBehind(left)
	}
	if err != nil {
		e.publishErrors.Add(1)
		e.troubleAt.Store(time.Now().UnixNano())
		logged := false
		if cc, ok := e.client.(*redis.ClusterClient); ok {
			// go-redis refreshes its view of the slots on redirections
			// only, not when a master dies and its replica takes over.
			cc.ReloadState(ctx)
		} else if unreachable(err) && callerCtx.Err() == nil {
			logged = true // with the first, and then sends fail at once
			if e.unreachable.Shut(err) {
				e.log.Warn("redis unreachable; sends fail at once until it answers again", zap.Error(err))
			}
		}
		// What Redis answered (a password, an ACL, BUSY), a reply cut off
		// (the send may have been delivered), any failure on a cluster:
		// returned to the caller, and said here too, once a second.
		if !logged && callerCtx.Err() == nil {
			if ok, held := e.failLog.Allow(); ok {
				e.log.Warn("send failed", zap.String("channel", ch), zap.Error(err), zap.Uint64("suppressed", held))
			}
		}
		return 0, fmt.Errorf("emitter: publish to %s: %w", ch, err)
	}
	if e.unreachable.IsShut() && e.unreachable.Open() {
		e.troubleAt.Store(time.Now().UnixNano())
		e.log.Info("redis reachable again")
	}
	e.published.Add(1)
	if receivers == 0 {
		e.noReceivers.Add(1)
		// Every server listens on the broadcast channel, in any mode:
		// none heard it. A cluster trial lost every message to a mismatch
		// (sharded servers, a classic emitter, or the other way round)
		// while the counters looked healthy. Not said in the moments
		// after a failure or a recovery, while the servers may still be
		// subscribing again after a Redis fault (it was, falsely).
		if typ == protocol.TypeBroadcast && time.Since(time.Unix(0, e.troubleAt.Load())) >= quietAfterTrouble {
			if ok, n := e.unheardBroadcast.Allow(); ok {
				e.log.Warn("a broadcast reached no server: none is running, none is subscribed yet (after a Redis fault), or they subscribe in another mode (Options.Sharded must match the servers' redisbroker mode: sharded or not)",
					zap.Bool("sharded", e.opts.Sharded), zap.Uint64("suppressed", n))
			}
		}
	}
	return int(receivers), nil
}

// unreachable reports a failure that says Redis cannot be reached: a
// connection refused, reset or timed out, or no answer within
// PublishTimeout. An answer (an error reply) is not one.
func unreachable(err error) bool {
	var opErr *net.OpError
	return errors.As(err, &opErr) || errors.Is(err, context.DeadlineExceeded)
}

// Encode builds the envelope an emitter publishes, as the original's
// JSON.stringify({serverId, type, target, event, data, exclude}) does for
// the same values: absent target, data and exclude are left out (nil data
// is taken for JavaScript's undefined, not null), and HTML characters are
// not escaped. It is byte for byte the same but for U+2028 and U+2029 in
// strings, which encoding/json always writes as \u2028 and \u2029: the
// same JSON to any parser. data may be a json.RawMessage (used as is after
// validation) or any value encoding/json accepts; a protocol.Latest gives
// its data, and its key in a `latest` member (ours).
func Encode(typ protocol.MessageType, target, event string, data any, exclude []string) ([]byte, error) {
	if !typ.Valid() {
		return nil, fmt.Errorf("emitter: unknown message type %q", typ)
	}
	return encode(typ, target, event, data, exclude)
}

// encode is Encode for any type, the extensions' included.
func encode(typ protocol.MessageType, target, event string, data any, exclude []string) ([]byte, error) {
	latest, data := protocol.SplitLatest(data)
	raw, err := marshal(data)
	if err != nil {
		return nil, err
	}
	env := struct {
		ServerID string          `json:"serverId"`
		Type     string          `json:"type"`
		Target   string          `json:"target,omitempty"`
		Event    string          `json:"event"`
		Data     json.RawMessage `json:"data,omitempty"`
		Exclude  []string        `json:"exclude,omitempty"`
		Latest   string          `json:"latest,omitempty"`
	}{protocol.EmitterServerID, string(typ), target, event, raw, exclude, latest}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&env); err != nil {
		return nil, fmt.Errorf("emitter: encode envelope: %w", err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

func marshal(data any) (json.RawMessage, error) {
	switch d := data.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		if d != nil && !json.Valid(d) {
			return nil, errors.New("emitter: data is not valid JSON")
		}
		return d, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(data); err != nil {
		return nil, fmt.Errorf("emitter: data cannot be encoded as JSON: %w", err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

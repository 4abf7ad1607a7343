package helper

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/protocol"
	"github.com/gobwas/ws"
	"github.com/google/uuid"
	"go.uber.org/zap"
)

// JoinRoom puts a local client in room, without validation (server-side
// join). Internal names (ws:…) are refused. It reports whether the client
// is now a member.
//
// Local sends to the room reach the client at once. When the room is new
// to this instance, the broker subscription that brings other instances'
// sends to it is made in the background (in the Redis broker's audience and
// sharded modes); call SyncSubscriptions to wait for it.
//
// The rooms-changed callback is not called, unless
// Options.RoomsChangedByServer: then it is told of the join (ByServer),
// if the client was not in the room already, from a goroutine of its own
// once the room is subscribed; JoinRoom does not wait for it.
func (h *WebSocketServerHelper) JoinRoom(clientID, room string) bool {
	c := h.reg.get(clientID)
	if c == nil {
		return false
	}
	in, _ := h.reg.join(c, room)
	return in
}

// InRoom reports whether the local client clientID is a member of room:
// for a message handler's access check, without the copy GetClient makes
// of the client's every room. Its own-id room counts.
func (h *WebSocketServerHelper) InRoom(clientID, room string) bool {
	c := h.reg.get(clientID)
	return c != nil && h.reg.in(c, room)
}

// LeaveRoom takes a local client out of room, without validation, its
// own-id room included (as in the original; a client itself can never leave
// that one). It reports whether the client was a member. As with
// JoinRoom, the rooms-changed callback is told of it only with
// Options.RoomsChangedByServer (not of a leave of the own-id room, which
// ClientInfo.Rooms never holds).
func (h *WebSocketServerHelper) LeaveRoom(clientID, room string) bool {
	c := h.reg.get(clientID)
	if c == nil {
		return false
	}
	return h.reg.leave(c, room, true)
}

// ErrInvalidCloseCode is returned by Disconnect, DisconnectUser and
// DisconnectUserEverywhere for a code that may not be sent (RFC 6455 section 7.4). Use 1000–1003, 1007–1011, or
// one of 3000–4999 of the application's own (4001–4004 and 4008 already
// mean what docs/compatibility.md says).
var ErrInvalidCloseCode = protocol.ErrInvalidCloseCode

// Disconnect closes a local client, authenticated or not, with code and
// reason: to enforce a ban, a logout or an expired token. The close frame
// follows what is already queued for the client; the disconnect callback
// runs once the connection is gone, as for any other close, and a client
// that does not answer is cut after a second. A reason longer than the 123
// bytes a close frame holds is cut at a character boundary. It reports
// whether the client is here and was not already closing.
//
// It acts on this instance only: DisconnectUserEverywhere closes a user's
// connections on every instance.
func (h *WebSocketServerHelper) Disconnect(clientID string, code int, reason string) (bool, error) {
	if err := checkCloseCode(code); err != nil {
		return false, err
	}
	c := h.reg.get(clientID)
	if c == nil || c.closing() {
		return false, nil
	}
	h.log.Info("client disconnected by the application", zapClient(clientID), zap.Int("code", code))
	c.closeWith(ws.StatusCode(code), strings.ToValidUTF8(reason, ""))
	return true, nil
}

// DisconnectUser closes every local connection of userID as Disconnect
// does, but those whose client ids are in except, and returns how many it
// closed. It acts on the connections bound to the user now:
// DisconnectUserEverywhere also reaches those whose authentication as the
// user is under way.
func (h *WebSocketServerHelper) DisconnectUser(userID string, code int, reason string, except ...string) (int, error) {
	return h.disconnectUser(userID, code, reason, except, false)
}

// disconnectUser is DisconnectUser; fenced, it also raises a fence (see
// fences) that closes the connections whose authentication as userID is
// under way, but those in except, once it completes.
func (h *WebSocketServerHelper) disconnectUser(userID string, code int, reason string, except []string, fenced bool) (int, error) {
	if err := checkCloseCode(code); err != nil {
		return 0, err
	}
	reason = strings.ToValidUTF8(reason, "")
	if fenced && userID != "" && h.pending.Load() > 0 {
		// Before the pass below: a connection bound to the user after it
		// finds the fence. With no connection pending, none can be
		// authenticating: what begins after now is not fenced anyway.
		h.fences.raise(userID, fence{at: h.mono(time.Now()), code: ws.StatusCode(code), reason: fitCloseReason(reason), except: slices.Clone(except)})
	}
	rs := getRecipients()
	defer putRecipients(rs)
	*rs = h.reg.appendUser(*rs, userID)
	n := 0
	for _, c := range *rs {
		if c.closing() || contains(except, c.id) {
			continue
		}
		c.closeWith(ws.StatusCode(code), reason)
		n++
	}
	if n > 0 {
		h.log.Info("user disconnected by the application", zap.String("userId", userID), zap.Int("code", code))
	}
	return n, nil
}

// DisconnectUserEverywhere closes every connection of userID on every
// instance (an extension: a ban, a "log out everywhere"): this instance's
// as DisconnectUser does, the others' through the broker (a
// TypeDisconnectUser envelope on the broadcast channel, which every
// instance hears and the original ignores). A connection whose
// authentication as userID is under way, on any instance, is closed too
// once it completes, before `connected`: a token checked just before a
// logout does not outlive it. One that begins authenticating after the
// call is the user logging in again, and is left alone; so is the
// connection whose authenticate callback makes the call with its context
// (one session per user, enforced at login). The connections whose client
// ids are in except stay open, on every instance: one session per user or
// device, by closing the others from the new one's connected callback:
//
//	h.DisconnectUserEverywhere(ctx, info.UserID, 4000, "Signed in elsewhere", info.ClientID)
//
// (Two connections of one user made at the same moment on two instances
// may each close the other: the app that must keep exactly one keeps a
// session id per user in its store and closes by it.)
//
// An invalid code (ErrInvalidCloseCode) or an empty userID is an error that
// closes nothing; on a publish failure, the error, the local connections
// have been closed.
func (h *WebSocketServerHelper) DisconnectUserEverywhere(ctx context.Context, userID string, code int, reason string, except ...string) error {
	if userID == "" {
		return errors.New("websocket: DisconnectUserEverywhere: empty user id")
	}
	if c, ok := ctx.Value(clientKey{}).(*client); ok && c.state.Load() == stAuthenticating && !contains(except, c.id) {
		except = append(slices.Clip(except), c.id) // called from its own authenticate callback
	}
	if err := checkCloseCode(code); err != nil {
		return err
	}
	data, err := json.Marshal(protocol.DisconnectData{Code: code, Reason: closeReason(reason)})
	if err != nil {
		return err
	}
	envExcept := except
	if len(envExcept) == 0 {
		envExcept = nil // no empty exclude member in the envelope
	}
	// Encoded before anything is closed here: one over MaxEnvelopeLength
	// (a long except list) fails whole, as the other sends do.
	env, err := h.envelope(protocol.TypeDisconnectUser, userID, protocol.EventDisconnect, data, envExcept, "")
	if err != nil {
		return err
	}
	if _, err := h.disconnectUser(userID, code, reason, except, true); err != nil {
		return err
	}
	return h.publishPayload(ctx, env.channel, env.payload)
}

// AddUserToRooms puts every connection of userID, on every instance, in
// rooms (an extension: a user added to a channel, a game's players moved
// to a match): this instance's at once, as JoinRoom does, the others'
// through the broker (a TypeJoinUser envelope, which the original ignores,
// published on the broadcast channel and then on the user's channel: an
// instance applies the copy that comes first, and one where the user's
// connection is still authenticating, not yet listening on the user's
// channel, hears the first). Connections the user opens later are not
// covered: their rooms are what the authenticate handler gives them, so
// change what it reads before the call.
//
// Like JoinRoom, no room check runs, and each instance subscribes a room
// new to it in the background. The rooms-changed callback is not called,
// unless Options.RoomsChangedByServer on the instance holding a
// connection: it is told there, once however many copies of the order
// reach it, of the rooms the connection was not in yet (ByServer).
// What is then sent to the user (SendToUser, emitter.ToUser: the room's
// state) travels on the same channel, so every instance applies it after
// the join.
//
// Every name must be a room a client could join (protocol.ValidRoomName),
// and not one named like a client id unless Options.AllowClientIDRooms
// (it would hear what is sent to that client from other instances);
// otherwise nothing is done. A connection whose authentication as userID
// is under way joins the rooms once it completes. On a publish failure, the error, the local
// connections have been put in the rooms.
func (h *WebSocketServerHelper) AddUserToRooms(ctx context.Context, userID string, rooms ...string) error {
	return h.userRoomsEverywhere(ctx, protocol.TypeJoinUser, userID, rooms)
}

// RemoveUserFromRooms takes every connection of userID, on every
// instance, out of rooms (an extension: a kick or a ban from a channel,
// access revoked): as AddUserToRooms, with a TypeLeaveUser envelope. A join of the user's
// that was under way (its room check running), or rooms its
// authentication was giving it, do not undo it: such a room is left again
// as soon as it is joined, and the rooms-changed callback is not told of
// that join nor of that leave. A join that begins after the call is let
// in (keep a ban in the room check). With Options.RoomsChangedByServer,
// the instance holding a connection tells its rooms-changed callback of
// the rooms the connection really left (ByServer), as for AddUserToRooms.
func (h *WebSocketServerHelper) RemoveUserFromRooms(ctx context.Context, userID string, rooms ...string) error {
	return h.userRoomsEverywhere(ctx, protocol.TypeLeaveUser, userID, rooms)
}

func (h *WebSocketServerHelper) userRoomsEverywhere(ctx context.Context, typ protocol.MessageType, userID string, rooms []string) error {
	method, event := "AddUserToRooms", protocol.EventJoin
	if typ == protocol.TypeLeaveUser {
		method, event = "RemoveUserFromRooms", protocol.EventLeave
	}
	if userID == "" {
		return fmt.Errorf("websocket: %s: empty user id", method)
	}
	if len(rooms) == 0 {
		return fmt.Errorf("websocket: %s: no rooms", method)
	}
	for _, r := range rooms {
		if !h.userRoom(r) {
			return fmt.Errorf("websocket: %s: %q is not a room a client may be in (or is named like a client id: see Options.AllowClientIDRooms)", method, r)
		}
	}
	data, err := json.Marshal(protocol.RoomsData{Rooms: rooms, Order: uuid.NewString()})
	if err != nil {
		return err
	}
	// Twice, with one order id (see userOrders): every instance hears the
	// broadcast copy, one whose only connection of the user is still
	// authenticating too; the user's channel copy comes in order with what
	// is sent to the user after it.
	env := protocol.Envelope{ServerID: h.serverID, Type: typ, Target: userID, Event: event, Data: data}
	payload, err := h.encodeEnvelope(&env)
	if err != nil {
		return fmt.Errorf("websocket: %s: %w", method, err)
	}
	h.userRoomsLocal(typ, userID, rooms)
	if err := h.publishPayload(ctx, protocol.ChannelBroadcast, payload); err != nil {
		return err
	}
	return h.publishPayload(ctx, env.Channel(), payload)
}

// userRoomsLocal applies a join or leave of a user's to its connections
// here, skipping names that are not rooms.
func (h *WebSocketServerHelper) userRoomsLocal(typ protocol.MessageType, userID string, rooms []string) {
	rooms = slices.DeleteFunc(slices.Clone(rooms), func(r string) bool { return !h.userRoom(r) })
	add := typ == protocol.TypeJoinUser
	// Before the pass below: an authentication or a join of one of these
	// connections under way finds the fence (see fences); an addition
	// stands too, as the last order about its rooms, over a removal that
	// such a join would otherwise apply after it. With no connection of
	// the user here and none pending, nothing is under way. With one
	// pending, before the user's connections are read, as disconnectUser
	// does: a connection bound between the read and the fence would
	// otherwise have checked the fences before this one, and be missed by
	// both.
	raised := false
	if len(rooms) > 0 && h.pending.Load() > 0 {
		h.fences.raise(userID, fence{at: h.mono(time.Now()), rooms: rooms, add: add})
		raised = true
	}
	rs := getRecipients()
	defer putRecipients(rs)
	*rs = h.reg.appendUser(*rs, userID)
	if len(rooms) > 0 && !raised && len(*rs) > 0 {
		h.fences.raise(userID, fence{at: h.mono(time.Now()), rooms: rooms, add: add})
	}
	for _, c := range *rs {
		for _, r := range rooms {
			if !add {
				h.reg.leave(c, r, false)
			} else if !h.roomsFull(c) {
				h.reg.join(c, r)
			}
		}
	}
}

// userRoom reports whether AddUserToRooms and RemoveUserFromRooms may name
// r: a room a client could join, not named like a client id unless
// Options.AllowClientIDRooms (it would hear what is sent to that client
// from other instances).
func (h *WebSocketServerHelper) userRoom(r string) bool {
	return protocol.ValidRoomName(r) && (h.opts.AllowClientIDRooms || !protocol.IsClientID(r))
}

// userRoomsFromBroker applies a TypeJoinUser or TypeLeaveUser envelope;
// false for one without a user or a rooms list.
func (h *WebSocketServerHelper) userRoomsFromBroker(typ protocol.MessageType, userID string, data json.RawMessage) bool {
	var d protocol.RoomsData
	if userID == "" || json.Unmarshal(data, &d) != nil || len(d.Rooms) == 0 {
		return false
	}
	if d.Order == "" { // an order from a version that sends it once
		h.userRoomsLocal(typ, userID, d.Rooms)
		return true
	}
	h.orders.once(d.Order, h.mono(time.Now()), func() { h.userRoomsLocal(typ, userID, d.Rooms) })
	return true
}

// DisconnectEverywhere closes the client clientID on whichever instance
// holds it (an extension: one session per device, where the app keeps the
// device's client id and closes the old one from the new one's connected
// callback): here as Disconnect does, elsewhere through the broker (a
// TypeDisconnectClient envelope on the client's channel, which the
// original ignores). An invalid code (ErrInvalidCloseCode) or an empty
// clientID is an error that closes nothing; on a publish failure, the
// error, a local client has been closed.
func (h *WebSocketServerHelper) DisconnectEverywhere(ctx context.Context, clientID string, code int, reason string) error {
	if clientID == "" {
		return errors.New("websocket: DisconnectEverywhere: empty client id")
	}
	if here, err := h.Disconnect(clientID, code, reason); err != nil || here {
		return err // held here: no other instance has it
	}
	data, err := json.Marshal(protocol.DisconnectData{Code: code, Reason: closeReason(reason)})
	if err != nil {
		return err
	}
	return h.publish(ctx, protocol.TypeDisconnectClient, clientID, protocol.EventDisconnect, data, nil, "")
}

// closeReason is reason as a close frame carries it: valid UTF-8, 123
// bytes at most.
func closeReason(reason string) string { return fitCloseReason(strings.ToValidUTF8(reason, "")) }

// disconnectFromBroker carries out another instance's or an emitter's
// DisconnectUserEverywhere; false: the data is not a valid request.
func (h *WebSocketServerHelper) disconnectFromBroker(typ protocol.MessageType, target string, data json.RawMessage, except []string) bool {
	var d protocol.DisconnectData
	if target == "" || json.Unmarshal(data, &d) != nil || checkCloseCode(d.Code) != nil {
		return false
	}
	// Both make the reason one a close frame carries.
	if typ == protocol.TypeDisconnectClient {
		_, _ = h.Disconnect(target, d.Code, d.Reason)
	} else {
		_, _ = h.disconnectUser(target, d.Code, d.Reason, except, true)
	}
	return true
}

func checkCloseCode(code int) error {
	if code < 0 || code > 0xffff || !validCloseCode(ws.StatusCode(code)) {
		return fmt.Errorf("%w: %d", ErrInvalidCloseCode, code)
	}
	return nil
}

// SyncSubscriptions waits until the broker subscriptions for every room,
// user and client this instance has members of when it is called are in
// place (the Redis broker has confirmed them), or ctx ends. Joins and
// logins change those subscriptions in the background; after a JoinRoom,
// this is what makes a send from another instance sure to arrive. It
// returns at once with a broker that receives every channel anyway. A
// change that failed (Redis down) counts as done: it is retried in the
// background, and the broker subscribes again when Redis is back. So does
// a channel Redis refuses (the Redis user's ACL does not allow it), which
// is not subscribed: the Redis broker logs and counts it
// (redisbroker.ErrRefused, its Stats().Refused) and tries it again every
// minute.
func (h *WebSocketServerHelper) SyncSubscriptions(ctx context.Context) error {
	if err := h.subs.sync(ctx); err != nil {
		return fmt.Errorf("websocket: sync subscriptions: %w", err)
	}
	return nil
}

// GetClients returns a snapshot of every local client.
func (h *WebSocketServerHelper) GetClients() []ClientView {
	h.reg.mu.RLock()
	cs := make([]*client, 0, len(h.reg.clients))
	for _, c := range h.reg.clients {
		cs = append(cs, c)
	}
	return h.viewsUnlock(cs)
}

// GetClient returns a snapshot of one local client.
func (h *WebSocketServerHelper) GetClient(id string) (ClientView, bool) {
	h.reg.mu.RLock()
	c := h.reg.clients[id]
	if c == nil {
		h.reg.mu.RUnlock()
		return ClientView{}, false
	}
	return h.viewsUnlock([]*client{c})[0], true
}

// GetClientsByUser returns snapshots of the local connections of a user.
func (h *WebSocketServerHelper) GetClientsByUser(userID string) []ClientView {
	h.reg.mu.RLock()
	return h.viewsUnlock(slices.Clone(h.reg.users[userID]))
}

// GetClientsByRoom returns snapshots of the local members of a room.
func (h *WebSocketServerHelper) GetClientsByRoom(room string) []ClientView {
	h.reg.mu.RLock()
	return h.viewsUnlock(h.reg.appendRoomLocked(nil, room))
}

// viewsUnlock takes the snapshots of cs under the registry's read lock,
// which the caller holds, lets it go, and then asks each socket for its
// backlog: a system call each, which joins and leaves need not wait for.
func (h *WebSocketServerHelper) viewsUnlock(cs []*client) []ClientView {
	out := make([]ClientView, len(cs))
	for i, c := range cs {
		out[i] = c.view()
	}
	h.reg.mu.RUnlock()
	for i, c := range cs {
		out[i].Backlog = c.backlog()
	}
	return out
}

// Stats are the helper's counters.
type Stats struct {
	// Clients is the number of local connections; Authenticated, those
	// past authentication; Rooms and Users, the non-empty local indexes.
	Clients, Authenticated, Rooms, Users int
	// Subscriptions is the number of broker channels the local audience
	// needs (ws:broadcast not included); SyncSubscriptions waits until the
	// broker has taken them (subscribed, or kept for later: Redis away, or
	// a channel its ACL refuses).
	Subscriptions int
	// ConnectionsTotal counts every upgrade since start; DirectUpgrades,
	// those answered as they were accepted (Serve).
	ConnectionsTotal, DirectUpgrades uint64
	// Delivered counts the app's messages handed to clients' connections,
	// one per recipient: written to the socket (to the kernel: whether
	// the client ever reads them is not known) or queued behind what is
	// still being written, within BackpressureLimit. The protocol's own
	// frames (connected, error events, pongs) are not counted.
	// DroppedBackpressure,
	// messages not queued because a client's buffer was full, or because
	// 1024 of the broker's messages were already waiting for its outbound
	// transformer.
	Delivered, DroppedBackpressure uint64
	// Superseded counts messages sent as protocol.Latest that a client
	// never got because a newer one of the same key came while they
	// waited in its queue: a slow reader catching up on the newest state,
	// or a burst of one key faster than a fan-out's writes. They were
	// counted in Delivered when queued.
	Superseded uint64
	// DroppedLatest is the part of DroppedBackpressure sent as
	// protocol.Latest: values dropped past twice BackpressureLimit, whose
	// key a client may then hold a stale value of until the next send of
	// it. Size BackpressureLimit to hold the newest value of every key a
	// client may have waiting, or set CloseOnBackpressureLimit so that
	// such a client reconnects and starts afresh.
	DroppedLatest uint64
	// Received counts the complete messages read from clients, whatever
	// became of them: every event (authenticate, heartbeat, join, leave
	// and the app's), those answered with an error, over the rate limit,
	// or read after the server's close. Control frames are not counted.
	Received uint64
	// PublishErrors counts failed broker publishes; BadEnvelopes, envelopes
	// dropped as unreadable or over Options.MaxEnvelopeLength; HandlerErrors, the app's callbacks that
	// failed (an error or a panic): message, validate-room, connected,
	// disconnected and rooms-changed (authenticate's are AuthErrors).
	PublishErrors, BadEnvelopes, HandlerErrors uint64
	// Unopened counts the sealed (`encrypted`) client messages the inbound
	// transformer could not open (a wrong key, a damaged message): they
	// are dropped without an answer to the client.
	Unopened uint64
	// MemoryReleases counts the times memory was handed back to the OS
	// after connections dropped (Options.ReleaseMemoryAfter).
	MemoryReleases uint64
	// InflatedMessages counts compressed client messages inflated
	// (Options.PerMessageDeflate); DeliveredCompressed, the part of
	// Delivered that went out as compressed frames
	// (Options.CompressMinSize).
	InflatedMessages, DeliveredCompressed uint64
	// RateLimited counts clients closed (1008) for going over their
	// message rate or their inflate budget (Limits).
	RateLimited uint64
	// ServerCloses counts the sessions the server ended, by the close
	// code it sent: 4001 authentication timeout, 4002 heartbeat timeout,
	// 4003 authentication failed, 4004 encryption required, 4008
	// backpressure, 1001 shutdown or idle timeout, 1002, 1007 and 1009
	// protocol errors, 1008 limits, and what Disconnect was given.
	// ClientCloses counts those the client ended, by its code (1005: a
	// close frame without one). Dropped counts connections that ended
	// with no close frame from either side (a reset, a drop, a failed
	// write): the disconnect callback's 1006. Each call returns fresh
	// maps.
	ServerCloses, ClientCloses map[int]uint64
	Dropped                    uint64
	// IdleTimeouts counts the sessions the idle sweep ended (1001 "Idle
	// timeout", Options.IdleTimeout): the part of ServerCloses[1001] that
	// is not a shutdown or a Disconnect.
	IdleTimeouts uint64
	// AgedOut counts the sessions Options.MaxConnectionAge ended (1001
	// "Max connection age"), also part of ServerCloses[1001].
	AgedOut uint64
	// AuthRejected counts authentications the handler refused (a nil
	// result: 4003 "Authentication failed"); AuthErrors, those it failed
	// with an error (4003 too, after an "Authentication error" event): a
	// broken auth backend, not bad tokens.
	AuthRejected, AuthErrors uint64
	// RefusedAtLimit counts upgrades answered 503 because of
	// Limits.MaxConnections or MaxPendingConnections; RefusedOrigin, those
	// answered 403 for their Origin.
	RefusedAtLimit, RefusedOrigin uint64
	// BrokerConnected is the broker's state, for readiness checks and alerts:
	// whether it reaches the other instances now (always true for the
	// in-process broker; for the Redis broker, a live subscription and
	// Redis not found unreachable). False before Start.
	BrokerConnected bool
	// BrokerDropped counts the messages from other instances and emitters
	// that the broker received and dropped because this instance fell
	// behind them (the Redis broker's queue was full: after the process
	// stood still, or with handlers too slow for the traffic). Those sends
	// reported success to their senders; their clients here missed them.
	// Zero for brokers that do not say (a broker with a Dropped() uint64
	// method does).
	BrokerDropped uint64
	// BrokerReconnects counts the broker's subscriptions lost and made
	// again: the Redis broker's Stats().Reconnects, or what any broker
	// with a Reconnects() uint64 method says; zero for others. What the other
	// instances sent meanwhile is lost, and a Redis restarted without
	// persistence lost what the app kept there: an app that keeps state
	// in Redis (presence) writes its entries again when this changes.
	// BrokerConnected is false only for the moment of the reconnection,
	// often under a second: a scrape seldom sees it.
	BrokerReconnects uint64
}

type counters struct {
	connections, delivered, droppedBackpressure atomic.Uint64
	superseded, droppedLatest                   atomic.Uint64
	received, unopened                          atomic.Uint64
	directUpgrades                              atomic.Uint64
	publishErrors, badEnvelopes, handlerErrors  atomic.Uint64
	memoryReleases                              atomic.Uint64
	inflated, deliveredCompressed               atomic.Uint64
	rateLimited, agedOut                        atomic.Uint64
	authRejected, authErrors                    atomic.Uint64
	refusedAtLimit, refusedOrigin               atomic.Uint64
	authenticated                               atomic.Int64
	closes                                      closeCounts
}

// closeCounts tallies ended sessions by who ended them and with which
// code. A client may send any code from 1000 to 4999, so each map holds
// a few thousand entries at most.
type closeCounts struct {
	mu             sync.Mutex
	server, client map[int]uint64
	dropped, idle  uint64
}

func (cc *closeCounts) add(by string, code int, idle bool) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	switch by {
	case CloseByServer:
		if cc.server == nil {
			cc.server = make(map[int]uint64)
		}
		cc.server[code]++
		if idle {
			cc.idle++
		}
	case CloseByClient:
		if cc.client == nil {
			cc.client = make(map[int]uint64)
		}
		cc.client[code]++
	default:
		cc.dropped++
	}
}

func (cc *closeCounts) snapshot() (server, client map[int]uint64, dropped, idle uint64) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return maps.Clone(cc.server), maps.Clone(cc.client), cc.dropped, cc.idle
}

// Stats returns the current counters.
func (h *WebSocketServerHelper) Stats() Stats {
	clients, rooms, users := h.reg.counts()
	serverCloses, clientCloses, dropped, idle := h.stats.closes.snapshot()
	if serverCloses == nil {
		serverCloses = map[int]uint64{}
	}
	if clientCloses == nil {
		clientCloses = map[int]uint64{}
	}
	return Stats{
		Clients:             clients,
		Authenticated:       int(h.stats.authenticated.Load()),
		Rooms:               rooms,
		Users:               users,
		Subscriptions:       h.subs.count(),
		ConnectionsTotal:    h.stats.connections.Load(),
		DirectUpgrades:      h.stats.directUpgrades.Load(),
		Delivered:           h.stats.delivered.Load(),
		DroppedBackpressure: h.stats.droppedBackpressure.Load(),
		Superseded:          h.stats.superseded.Load(),
		DroppedLatest:       h.stats.droppedLatest.Load(),
		Received:            h.stats.received.Load(),
		Unopened:            h.stats.unopened.Load(),
		PublishErrors:       h.stats.publishErrors.Load(),
		BadEnvelopes:        h.stats.badEnvelopes.Load(),
		InflatedMessages:    h.stats.inflated.Load(),
		DeliveredCompressed: h.stats.deliveredCompressed.Load(),
		HandlerErrors:       h.stats.handlerErrors.Load(),
		MemoryReleases:      h.stats.memoryReleases.Load(),
		RateLimited:         h.stats.rateLimited.Load(),
		ServerCloses:        serverCloses,
		ClientCloses:        clientCloses,
		Dropped:             dropped,
		IdleTimeouts:        idle,
		AgedOut:             h.stats.agedOut.Load(),
		AuthRejected:        h.stats.authRejected.Load(),
		AuthErrors:          h.stats.authErrors.Load(),
		RefusedAtLimit:      h.stats.refusedAtLimit.Load(),
		RefusedOrigin:       h.stats.refusedOrigin.Load(),
		BrokerConnected:     h.brokerConnected(),
		BrokerDropped:       h.brokerDropped(),
		BrokerReconnects:    h.brokerReconnects(),
	}
}

// brokerReconnects is the broker's count of lost subscriptions it made
// again, if it keeps one (see Stats.BrokerReconnects).
func (h *WebSocketServerHelper) brokerReconnects() uint64 {
	if r, ok := h.broker.(interface{ Reconnects() uint64 }); ok {
		return r.Reconnects()
	}
	return 0
}

// brokerDropped is the broker's count of messages it dropped, if it keeps
// one (see Stats.BrokerDropped).
func (h *WebSocketServerHelper) brokerDropped() uint64 {
	if d, ok := h.broker.(interface{ Dropped() uint64 }); ok {
		return d.Dropped()
	}
	return 0
}

// brokerConnected reports whether the broker reaches the other instances
// now (see Stats.BrokerConnected).
func (h *WebSocketServerHelper) brokerConnected() bool {
	if !h.ready.Load() {
		return false
	}
	if c, ok := h.broker.(interface{ Connected() bool }); ok {
		return c.Connected()
	}
	return true
}

// Broker is the broker the helper publishes and subscribes through: the
// module's Redis broker (a *redisbroker.Broker, whose Stats say more),
// the one bound with BrokerKey, or the in-process one.
func (h *WebSocketServerHelper) Broker() broker.Broker { return h.broker }

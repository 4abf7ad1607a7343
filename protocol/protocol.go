// Package protocol holds the wire vocabulary of the Ignis WebSocket protocol:
// events, client states, Redis channels and message types, defaults, close
// codes, error texts, and the message and envelope types. It does no I/O and
// depends on nothing but the standard library, so clients, emitters and
// servers can all share it.
package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// System events. Any other event name is an application event.
const (
	EventAuthenticate = "authenticate"
	EventConnected    = "connected"
	EventDisconnect   = "disconnect"
	EventJoin         = "join"
	EventLeave        = "leave"
	EventError        = "error"
	EventHeartbeat    = "heartbeat"
	EventEncrypted    = "encrypted"
)

// IsSystemEvent reports whether event is one of the protocol's own events.
func IsSystemEvent(event string) bool {
	switch event {
	case EventAuthenticate, EventConnected, EventDisconnect, EventJoin,
		EventLeave, EventError, EventHeartbeat, EventEncrypted:
		return true
	}
	return false
}

// ClientState is where a connection stands in the authentication lifecycle.
type ClientState string

// Client states, in lifecycle order.
const (
	StateUnauthorized   ClientState = "unauthorized"
	StateAuthenticating ClientState = "authenticating"
	StateAuthenticated  ClientState = "authenticated"
	StateDisconnected   ClientState = "disconnected"
)

// Redis channels shared by every server instance and emitter.
const (
	ChannelBroadcast     = "ws:broadcast"
	ChannelRoomPrefix    = "ws:room:"
	ChannelClientPrefix  = "ws:client:"
	ChannelUserPrefix    = "ws:user:"
	ChannelRoomPattern   = ChannelRoomPrefix + "*"
	ChannelClientPattern = ChannelClientPrefix + "*"
	ChannelUserPattern   = ChannelUserPrefix + "*"
)

// RoomChannel is the Redis channel of a room.
func RoomChannel(room string) string { return ChannelRoomPrefix + room }

// ClientChannel is the Redis channel of one client.
func ClientChannel(clientID string) string { return ChannelClientPrefix + clientID }

// UserChannel is the Redis channel of one user's connections.
func UserChannel(userID string) string { return ChannelUserPrefix + userID }

// MessageType says which audience a Redis envelope targets.
type MessageType string

// Envelope types.
const (
	TypeClient    MessageType = "client"
	TypeUser      MessageType = "user"
	TypeRoom      MessageType = "room"
	TypeBroadcast MessageType = "broadcast"

	// TypeDisconnectUser (an extension) asks every instance to close the
	// connections of the user named by the target, with the close code
	// and reason in the data (DisconnectData). It travels on the broadcast
	// channel, which every instance hears, also one where the user's only
	// connection is still authenticating (not yet subscribed to the user's
	// channel), with the event EventDisconnect (the original drops an
	// envelope without a string event, and ignores a type it does not
	// know).
	TypeDisconnectUser MessageType = "disconnect-user"

	// TypeDisconnectClient (an extension) asks the instance that holds
	// the client named by the target to close it, as TypeDisconnectUser
	// does a user's connections; it travels on the client's channel.
	TypeDisconnectClient MessageType = "disconnect-client"

	// TypeJoinUser (an extension) asks every instance to put the
	// connections of the user named by the target in the rooms of the
	// data (RoomsData, as a client's join), with the event EventJoin;
	// TypeLeaveUser takes them out, with the event EventLeave. Each is
	// published twice with one RoomsData.Order: on the broadcast channel,
	// for the instances where the user's connection is still
	// authenticating (not subscribed to the user's channel yet), then on
	// the user's channel, so that what is sent to the user after it (a
	// room's state) is applied after it on every instance. An instance
	// applies the copy that comes first.
	TypeJoinUser  MessageType = "join-user"
	TypeLeaveUser MessageType = "leave-user"
)

// ValidCloseCode reports whether code may be sent in a close frame (RFC
// 6455 §7.4): the defined codes an endpoint may send, and 3000–4999.
func ValidCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1011:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// ErrInvalidCloseCode is the error, wrapped, of the calls that close
// connections (the helper's Disconnect family, the emitter's
// DisconnectUser) for a code that ValidCloseCode refuses.
var ErrInvalidCloseCode = errors.New("websocket: invalid close code")

// DisconnectData is the data of a TypeDisconnectUser or
// TypeDisconnectClient envelope.
type DisconnectData struct {
	// Code is the `code` member: the close code the connections get.
	Code int `json:"code"`
	// Reason is the `reason` member: the close frame's reason.
	Reason string `json:"reason"`
}

// Valid reports whether t is one of the original's four envelope types,
// the ones an app may publish as it likes. This library's extensions
// (TypeDisconnectUser, TypeDisconnectClient, TypeJoinUser, TypeLeaveUser)
// are not among them: they are sent by the helper's and the emitter's
// methods for them, which check their data.
func (t MessageType) Valid() bool {
	switch t {
	case TypeClient, TypeUser, TypeRoom, TypeBroadcast:
		return true
	}
	return false
}

// Channel is the Redis channel an envelope of this type and target is
// published on, or "" for an unknown type.
func (t MessageType) Channel(target string) string {
	switch t {
	case TypeBroadcast, TypeDisconnectUser:
		return ChannelBroadcast
	case TypeRoom:
		return RoomChannel(target)
	case TypeClient, TypeDisconnectClient:
		return ClientChannel(target)
	case TypeUser, TypeJoinUser, TypeLeaveUser:
		return UserChannel(target)
	}
	return ""
}

// EmitterServerID is the serverId every standalone emitter publishes with.
const EmitterServerID = "emitter"

// Defaults of the original implementation, kept for wire compatibility.
const (
	DefaultPath                = "/ws"
	DefaultRoom                = "ws-default"
	DefaultNotificationRoom    = "ws-notification"
	InternalBroadcastTopic     = "ws:internal:broadcast"
	DefaultMaxPayloadLength    = 128 * 1024
	DefaultIdleTimeout         = 60 * time.Second
	DefaultBackpressureLimit   = 1024 * 1024
	DefaultSendPings           = true
	DefaultPublishToSelf       = false
	DefaultAuthTimeout         = 5 * time.Second
	DefaultHeartbeatInterval   = 30 * time.Second
	DefaultHeartbeatTimeout    = 90 * time.Second
	DefaultEncryptedBatchLimit = 10
	DefaultIdentifier          = "WEBSOCKET_SERVER"
	// AuthInProgressFactor multiplies the auth timeout once authentication
	// has started, so a slow authenticate callback cannot hold a socket forever.
	AuthInProgressFactor = 3
)

// DefaultRooms returns a fresh copy of the rooms every client joins after
// authenticating, unless configured otherwise.
func DefaultRooms() []string { return []string{DefaultRoom, DefaultNotificationRoom} }

// Room names.
const (
	// InternalPrefix marks names reserved for the server; clients can never
	// join such a room and no room with it has members.
	InternalPrefix = "ws:"
	// MaxRoomNameLength is counted in UTF-16 code units, as JavaScript
	// counts string length, so both implementations accept the same names.
	MaxRoomNameLength = 256
)

// ValidRoomName reports whether a client may ask to join room: non-empty,
// at most MaxRoomNameLength UTF-16 code units, valid UTF-8, and not internal.
func ValidRoomName(room string) bool {
	if room == "" || strings.HasPrefix(room, InternalPrefix) || !utf8.ValidString(room) {
		return false
	}
	if len(room) <= MaxRoomNameLength { // every code unit is at least one byte
		return true
	}
	units := 0
	for _, r := range room {
		units++
		if r >= 0x10000 {
			units++
		}
		if units > MaxRoomNameLength {
			return false
		}
	}
	return true
}

// IsClientID reports whether s has the shape of a client id: a UUID in the
// canonical lower-case form (8-4-4-4-12 hex digits) that servers, the
// original's included, give their clients. The version is not checked.
func IsClientID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

// Close codes sent by the server.
const (
	CloseNormal          = 1000
	CloseGoingAway       = 1001 // server shutting down
	CloseProtocolError   = 1002
	CloseUnsupportedData = 1003
	CloseInvalidPayload  = 1007 // text frame that is not UTF-8
	ClosePolicyViolation = 1008
	CloseMessageTooBig   = 1009
	CloseInternalError   = 1011

	CloseAuthTimeout        = 4001
	CloseHeartbeatTimeout   = 4002
	CloseAuthFailed         = 4003
	CloseEncryptionRequired = 4004
	// CloseBackpressure is ours (the original never closes a slow client):
	// the client's outbound buffer passed the backpressure limit.
	CloseBackpressure = 4008
)

// Close reasons that go with the codes above.
const (
	ReasonAuthTimeout        = "Authentication timeout"
	ReasonHeartbeatTimeout   = "Heartbeat timeout"
	ReasonAuthFailed         = "Authentication failed"
	ReasonEncryptionRequired = "Encryption required"
	ReasonShuttingDown       = "Server shutting down"
	ReasonMessageTooBig      = "Received too big message"
	ReasonBackpressure       = "Backpressure limit exceeded"
	// ReasonIdleTimeout goes with CloseGoingAway: the client sent nothing,
	// not even a pong, for the idle timeout.
	ReasonIdleTimeout = "Idle timeout"
	// ReasonMaxConnectionAge goes with CloseGoingAway (ours: the original
	// has no age limit): the connection reached the server's maximum age,
	// and the client should connect again.
	ReasonMaxConnectionAge = "Max connection age"
	// ReasonRateLimited goes with ClosePolicyViolation (ours: the original
	// has no rate limit): the client went over its message rate or its
	// inflate budget. It follows the error event ErrTextRateLimited.
	ReasonRateLimited = "Rate limit exceeded"
)

// Texts of the error event's `message` field.
const (
	ErrTextInvalidFormat        = "Invalid message format"
	ErrTextNotAuthenticated     = "Not authenticated"
	ErrTextAlreadyAuthenticated = "Already authenticated"
	ErrTextAuthFailed           = "Authentication failed"
	ErrTextAuthError            = "Authentication error"
	ErrTextHandshakeFailed      = "Encryption handshake failed"
	// ErrTextRateLimited is ours, sent before the close with
	// ReasonRateLimited.
	ErrTextRateLimited = "Rate limit exceeded"
	// ErrTextJoinTooLarge is ours: a join named more rooms than the
	// server takes in one (Limits.MaxRoomsPerJoin); the first ones were
	// taken, the rest ignored.
	ErrTextJoinTooLarge = "Too many rooms in one join"
	// ErrTextRoomLimit is ours: a join found the client in as many rooms
	// as it may be (Limits.MaxRoomsPerClient); the rooms past it were not
	// joined.
	ErrTextRoomLimit = "Room limit reached"
)

// Message is one frame of the wire protocol: a JSON object with an event
// name, optional data and an optional id. Data stays raw JSON so that it is
// decoded only by whoever needs it.
type Message struct {
	// Event is the `event` member: a system event (EventJoin and the
	// others) or the name of an application event.
	Event string `json:"event"`
	// Data is the `data` member, any JSON value; nil when the frame has none,
	// and then left out when encoded.
	Data json.RawMessage `json:"data,omitempty"`
	// ID is the `id` member, an optional string a client may add; no system
	// event uses it and the server sends none. A client's reaches the
	// message callback as it came (a non-string id reads as empty).
	ID string `json:"id,omitempty"`
}

// ErrorData is the data of an error event.
type ErrorData struct {
	// Message is the `message` member: what went wrong, one of the ErrText…
	// constants.
	Message string `json:"message"`
}

// ConnectedData is the data of the connected event. UserID is omitted for
// anonymous clients; the key fields are present only for encrypted clients.
type ConnectedData struct {
	// ID is the `id` member: the random UUID the server gave the client, which
	// is also the name of the client's own room.
	ID string `json:"id"`
	// UserID is the `userId` member: the user the authenticate callback
	// named for the client.
	UserID string `json:"userId,omitempty"`
	// Time is the `time` member: when `connected` was sent, in UTC as
	// JavaScript's toISOString writes it (2006-01-02T15:04:05.000Z).
	Time string `json:"time"`
	// ServerPublicKey is the `serverPublicKey` member: the server's key from
	// the encryption handshake, from which the client derives its session key
	// (in the Ignis ECDH scheme, base64 of a raw P-256 point).
	ServerPublicKey string `json:"serverPublicKey,omitempty"`
	// Salt is the `salt` member: the handshake's key-derivation salt (in the
	// Ignis ECDH scheme, 32 random bytes in base64).
	Salt string `json:"salt,omitempty"`
}

// RoomsData is the data of join and leave events.
type RoomsData struct {
	// Rooms is the `rooms` member: the room names a client asks to join or to
	// leave. Members that are not strings are skipped.
	Rooms []string `json:"rooms"`
	// Order is the `order` member of a TypeJoinUser or TypeLeaveUser
	// envelope's data (an extension): the id its two copies share, so that
	// an instance applies one of them. Empty in a client's join or leave.
	Order string `json:"order,omitempty"`
}

// DefaultMaxEnvelopeLength is the default largest envelope, in bytes, that
// servers take from Redis and servers and emitters publish (an extension:
// the original has no limit). See helper.Options.MaxEnvelopeLength.
const DefaultMaxEnvelopeLength = 16 << 20

// Envelope is what server instances and emitters publish on Redis.
type Envelope struct {
	// ServerID is the `serverId` member: the random id of the instance that
	// published the envelope, or EmitterServerID. An instance ignores the
	// envelopes that carry its own.
	ServerID string `json:"serverId"`
	// Type is the `type` member: which kind of audience Target names.
	// Receivers ignore unknown types.
	Type MessageType `json:"type"`
	// Target is the `target` member: the client id, user id or room name the
	// envelope is for; empty, and left out, for a broadcast.
	Target string `json:"target,omitempty"`
	// Event is the `event` member: the event name the clients receive.
	Event string `json:"event"`
	// Data is the `data` member, passed on to the clients as it is; nil when
	// the message has no data, which the clients then get without one.
	Data json.RawMessage `json:"data,omitempty"`
	// Exclude is the `exclude` member: the ids of clients that must not get a
	// room or broadcast envelope, such as the sender a relay must not echo.
	// Members that are not strings are ignored.
	Exclude []string `json:"exclude,omitempty"`
	// Latest is the `latest` member, an extension (see Latest): a key under
	// which a client keeps only the newest message still waiting for it.
	// The original's instances ignore it and deliver every message.
	Latest string `json:"latest,omitempty"`
}

// Latest marks a send's data as a value of which only the newest matters
// (a cursor, a position, a gauge, a price): pass it as the data of any send
// of the helper or the emitter. A client that still has an earlier
// message of the same Key waiting in the server for it has that one
// dropped, and gets this one in its turn, behind what was sent to it
// before. A message waits when the client reads slower than they come, and
// for a moment in a fan-out (the server writes a fan-out's frames in a
// batch, a fraction of a millisecond later): a client that reads as fast
// as they come gets every message sent at a tick's pace, and of a burst
// of one key faster than that, the newest. So a client that falls behind
// catches up on the newest state instead of a backlog of stale ones, and
// its queue holds one message per key, not one per send. Latest values may
// take that queue to twice the server's backpressure limit (the helper's
// Options.BackpressureLimit), which should hold the newest value of every
// key a client may have waiting; past it one is dropped like any other
// message (Stats.DroppedLatest), and its key stays on the older value
// until it is sent again.
//
// Key names the stream within a client's queue ("cursor:"+userID), so one
// key must not carry two streams a client should have both of. Messages
// already handed to the socket are not taken back: a small
// Options.SendBufferSize keeps that part short. For encrypted clients,
// messages from other instances wait for the outbound transformer, in a
// queue of their own, before a key applies. Across instances the key
// travels in the envelope's `latest` member; the original's instances
// deliver every message.
type Latest struct {
	// Key names the stream; empty, the data is sent as any other.
	Key string
	// Data is the message's data, encoded as a send encodes any data.
	Data any
}

// SplitLatest takes a send's data apart: the key and data of a Latest (or
// of a *Latest; a nil one is no data), or no key and data as it is. The
// helper and the emitter both send what it gives.
func SplitLatest(data any) (key string, inner any) {
	switch l := data.(type) {
	case Latest:
		return l.Key, l.Data
	case *Latest:
		if l == nil {
			return "", nil
		}
		return l.Key, l.Data
	}
	return "", data
}

// MarshalJSON encodes the data alone, so that a Latest that reaches an
// encoder of its own is sent as its data.
func (l Latest) MarshalJSON() ([]byte, error) { return json.Marshal(l.Data) }

// Channel is the Redis channel this envelope belongs on.
func (e *Envelope) Channel() string { return e.Type.Channel(e.Target) }

// DecodeEnvelope parses a Redis envelope and checks its shape as the original
// does: a JSON object with a string serverId and a string event. Type and
// target are not checked here; receivers ignore unknown types.
func DecodeEnvelope(b []byte) (*Envelope, error) {
	fields, err := ObjectFields(b)
	if err != nil {
		return nil, fmt.Errorf("protocol: envelope is not a JSON object: %w", err)
	}
	raw := struct{ ServerID, Type, Target, Event, Data, Exclude json.RawMessage }{
		fields["serverId"], fields["type"], fields["target"], fields["event"], fields["data"], fields["exclude"],
	}
	env := &Envelope{Data: bytes.Clone(raw.Data)}
	if !utf8.Valid(env.Data) {
		// Invalid bytes can only sit inside JSON strings here; replace them
		// as the original's decoding of the Redis message does, or they
		// would go out in text frames, which a browser fails with 1007.
		env.Data = ReplaceInvalidUTF8(env.Data)
	}
	if !decodeString(raw.ServerID, &env.ServerID) {
		return nil, errors.New("protocol: envelope has no string serverId")
	}
	if !decodeString(raw.Event, &env.Event) {
		return nil, errors.New("protocol: envelope has no string event")
	}
	var typ string
	if decodeString(raw.Type, &typ) {
		env.Type = MessageType(typ)
	}
	decodeString(raw.Target, &env.Target)
	decodeString(fields["latest"], &env.Latest)
	if len(raw.Exclude) > 0 && raw.Exclude[0] == '[' {
		// Non-string members are ignored rather than failing the envelope:
		// they cannot name a client anyway.
		var ids []any
		if json.Unmarshal(raw.Exclude, &ids) == nil {
			for _, id := range ids {
				if s, ok := id.(string); ok {
					env.Exclude = append(env.Exclude, s)
				}
			}
		}
	}
	return env, nil
}

// decodeString sets dst to the raw JSON string decoded; false if raw is
// absent or not a string.
func decodeString(raw json.RawMessage, dst *string) bool {
	s, ok := StringValue(raw)
	if ok {
		*dst = s
	}
	return ok
}

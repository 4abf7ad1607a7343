package helper

import (
	"compress/flate"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/protocol"
	"go.uber.org/zap"
)

// Options configures a server helper. The zero value of every field means
// the documented default, which is the original implementation's.
type Options struct {
	// Identifier names the server in logs. Default "WEBSOCKET_SERVER".
	Identifier string
	// Path is where connections are upgraded. Default "/ws".
	Path string
	// DefaultRooms are joined by every client after it authenticates.
	// Nil means ["ws-default", "ws-notification"]; an empty, non-nil
	// slice means none.
	DefaultRooms []string
	// AllowClientIDRooms lets clients ask to join rooms named like a
	// client id (a UUID in the canonical lower-case form servers give
	// clients), other than their own. Every client is a member of the room
	// named by its id, and a send to a client on another instance travels
	// through that room: a client that joined another's id room would get
	// that client's messages. So by default such names are dropped from a
	// join before the validate-room handler sees them (the original asks
	// the handler). Set it if your room names are bare UUIDs, and have the
	// handler refuse names that are not your rooms. Server-side JoinRoom is
	// not affected.
	AllowClientIDRooms bool
	// RoomsChangedByServer tells the rooms-changed callback
	// (Handlers.RoomsChanged) of the changes the server makes to a
	// client's rooms too, with RoomsChangedRequest.ByServer set: JoinRoom
	// and LeaveRoom on this instance, AddUserToRooms and
	// RemoveUserFromRooms from any instance or an emitter (an extension).
	// Then every change of a client's rooms after the connected
	// callback's ClientInfo.Rooms is told, once, on the instance holding
	// the client, in the order made: a presence list kept from the
	// connected, rooms-changed and disconnect callbacks stays right
	// whoever moves the client (see RoomsChangedFunc). A server change
	// that undoes one of the server's not told yet (a join, then a leave
	// of the same room, while the handler is busy) cancels it out: neither
	// is told, as the app ends where it began. Default false: only the
	// client's own joins and leaves are told, as the app makes the others.
	RoomsChangedByServer bool
	// AuthTimeout is how long a new connection may take to send
	// authenticate (close 4001 after). Once authentication has begun, the
	// client gets 3× this for the callbacks to finish. Default 5 s.
	AuthTimeout time.Duration
	// HeartbeatInterval is the period of the sweep that closes silent
	// authenticated clients. Default 30 s, or a third of HeartbeatTimeout
	// when that is under 90 s, so that a silent client is closed within
	// 4/3 of the timeout.
	HeartbeatInterval time.Duration
	// HeartbeatTimeout is how long an authenticated client may send nothing
	// before it is closed with 4002. Only messages from the client count
	// (a `heartbeat` event, any other): what it receives, and the pongs it
	// answers the server's pings with, do not, so a client that only
	// listens must send `heartbeat` (the original's rule). Default 90 s.
	HeartbeatTimeout time.Duration
	// PingsAreHeartbeats counts a client's protocol pings as messages for
	// HeartbeatTimeout: for devices whose WebSocket stack keeps the
	// connection alive with pings, and whose firmware sends no `heartbeat`
	// event. (The pongs that answer the server's pings never count: a
	// client's stack sends them by itself.) Default false, as the original:
	// pings keep a connection from IdleTimeout only.
	PingsAreHeartbeats bool
	// RequireEncryption runs the handshake callback during authentication
	// and delivers through the outbound transformer. Default false.
	RequireEncryption bool
	// MaxPayloadLength is the largest inbound message in bytes; larger ones
	// close the connection with 1009. Default 131072.
	MaxPayloadLength int
	// IdleTimeout closes a connection that has sent no frame at all (pongs
	// included) for this long, with 1001 "Idle timeout" (the code of a
	// server going away, as the original's idle close; the reason tells
	// them apart). Default 60 s.
	IdleTimeout time.Duration
	// DisablePings turns off the protocol-level pings sent to idle
	// connections (the original's sendPings, which defaults to true).
	DisablePings bool
	// MaxConnectionAge closes an authenticated connection once it is this
	// old, with 1001 "Max connection age" (the code of a server going
	// away: clients reconnect), each up to a tenth earlier than this age
	// (by its id), so that connections made together do not all come back
	// together. Through a load balancer the reconnections spread over
	// every instance: a fleet evens out after a rolling restart left the
	// last instance empty, and clients authenticate afresh (a revoked
	// token is refused). Checked every twentieth of the age, or by the
	// idle sweep (every quarter of IdleTimeout) when that is sooner, so up
	// to that much later. Default 0: no limit.
	MaxConnectionAge time.Duration
	// BackpressureLimit is how many bytes may wait in one client's
	// outbound buffer. Default 1 MiB. Latest values (protocol.Latest),
	// one per key, may take what waits to twice it. A message larger than
	// the limit still goes to a client with nothing waiting (it would
	// never fit otherwise); what follows it is then held to the limit
	// until it has drained.
	BackpressureLimit int
	// CloseOnBackpressureLimit closes a client whose buffer is full with
	// 4008 "Backpressure limit exceeded"; otherwise the message that does
	// not fit is dropped for that client and counted.
	CloseOnBackpressureLimit bool
	// MaxEnvelopeLength is the largest envelope, in bytes, taken from the
	// broker: one from another instance or an emitter that is larger is
	// dropped, counted in Stats.BadEnvelopes and logged (at most a line a
	// second), and a send of this instance's (Send, SendToUser, Publish, the
	// user and disconnect orders) that would publish a larger one fails with
	// ErrEnvelopeTooLarge before anything is delivered. A broadcast of
	// tens of megabytes is sent whole to each client with nothing waiting
	// (see BackpressureLimit), and transformed once per client for
	// encrypted ones, so that anyone who can publish on the Redis (or a
	// bug there) could otherwise take the server's memory many times over
	// with one message. Give every instance the same value. Default
	// 16 MiB; negative: no limit (the original has none). Messages sent to
	// this instance's clients only (SendToClient, SendToRoom, Broadcast)
	// are not bounded by it.
	MaxEnvelopeLength int
	// WriteTimeout bounds one write to a client's socket; a client that
	// accepts nothing for this long is disconnected. Default 10 s.
	WriteTimeout time.Duration
	// SendBufferSize sets each client socket's kernel send buffer
	// (SO_SNDBUF; Linux doubles it for its bookkeeping). The kernel's
	// default grows with the connection, up to 4 MiB on Linux, and takes
	// what a client that stopped reading is sent before BackpressureLimit
	// sees any of it: at 30 messages of 1 KiB a second, minutes of stale
	// messages. A state stream that wants a stalled client found soon
	// (with a small BackpressureLimit, and CloseOnBackpressureLimit) sets
	// a small buffer, such as 64 KiB; it also caps what one write can
	// move. 0 (the default) leaves the kernel's.
	SendBufferSize int
	// EncryptedBatchLimit is how many outbound transformations may run at
	// once for one local fan-out, and for all the messages from the broker
	// together (see OutboundTransformerFunc). Default 10.
	EncryptedBatchLimit int
	// ServerID identifies this instance on the broker; envelopes carrying
	// it are ignored. Default: a random UUID.
	ServerID string
	// SubscribeTimeout bounds the wait for the broker to confirm the
	// subscriptions of a newly authenticated client before `connected` is
	// sent. Default 5 s.
	SubscribeTimeout time.Duration
	// DisablePoller reads every connection from a goroutine of its own
	// instead of watching idle connections with one epoll instance
	// (Linux). The poller saves a goroutine stack (about 4 KiB) per idle
	// connection; turning it off is for comparison and debugging.
	DisablePoller bool
	// ReleaseMemoryAfter hands memory back to the operating system once a
	// crowd of connections has come or gone and things are quiet: when the
	// client count has grown by 256 and by a quarter or more, or fallen to
	// half of its high-water mark or less (by 256 or more), since the last
	// release, and for this long nobody has connected or left and fewer
	// than 1000 messages a second went out (a release costs a full
	// collection, which a busy server would pay in latency), the helper
	// runs two collections and returns the freed pages
	// (runtime/debug.FreeOSMemory), and ends the idle workers that served
	// the crowd. Go would otherwise keep them until its forced collection,
	// up to two minutes later, and even then keep up to twice the live heap:
	// 2000 churning clients left 79 MiB resident after 10 s idle, 21 MiB
	// once released. It acts on the whole process, at most once per change,
	// and costs one collection (milliseconds for a heap of tens of MiB).
	// Under steady traffic the heap still grows toward its GOGC goal
	// between collections. Default 5 s; negative turns it off (for
	// applications that manage memory themselves). Idle workers are also
	// ended, whatever this says, by the idle sweep (every quarter of
	// IdleTimeout) when none of the bursts since the last sweep needed
	// them.
	ReleaseMemoryAfter time.Duration
	// ShutdownSpread spreads Shutdown's 1001 closes over this long, in
	// order of connection, so that a rolling deploy's clients reconnect to
	// the other instances a few at a time rather than all in the same
	// millisecond. It never takes more than half of what Shutdown's
	// context leaves; clients not closed yet keep getting messages. The
	// stop then waits, up to a second more, for the last of them to answer
	// their close. 0 (the default): all at once, as the original.
	ShutdownSpread time.Duration
	// CheckOrigin decides whether an upgrade request's Origin is accepted.
	// Nil accepts every origin, as the original does. When AllowedOrigins
	// is set too, a request must pass both.
	CheckOrigin func(r *http.Request) bool
	// AllowedOrigins is an allowlist for the Origin header of upgrade
	// requests, against cross-site WebSocket hijacking: a page on another
	// site cannot open a connection that carries the user's cookies.
	// Entries are "scheme://host[:port]" (exact, case-insensitive),
	// "scheme://*.example.com" (any subdomain of example.com, not
	// example.com itself), either without "scheme://" (any scheme), or "*"
	// (every origin). A request without an Origin header is accepted:
	// browsers always send one, other clients usually none. A refused
	// request gets HTTP 403. Empty: every origin, as the original.
	AllowedOrigins []string
	// TrustedProxies are the reverse proxies, as IP addresses or CIDR
	// prefixes ("10.0.0.0/8", "::1"), whose forwarding headers are
	// believed. For a connection from one of them, ClientView.RemoteAddr,
	// AuthenticateRequest.RemoteAddr and the server's log lines carry the
	// client's IP address (no port) from X-Forwarded-For, read from the
	// right past the trusted proxies' own entries (a client can put
	// anything at its start), or else from X-Real-IP; so the proxy must
	// append to X-Forwarded-For or overwrite it, not pass the client's
	// through. The headers of any other peer are ignored, as anyone can
	// send them. Empty (the
	// default): the TCP peer's "ip:port", whatever the headers say.
	TrustedProxies []string
	// PerMessageDeflate accepts the permessage-deflate extension (RFC 7692)
	// when a client offers it, as the original's perMessageDeflate does:
	// the answer is "permessage-deflate; server_no_context_takeover;
	// client_no_context_takeover", compressed inbound messages are
	// inflated (their inflated size counts against MaxPayloadLength,
	// 1009 past it; data that does not inflate closes with 1007), and
	// outbound frames are sent uncompressed, as the original's are. No
	// context takeover means a decompressor is borrowed per message, so
	// an idle connection holds no compression state. Default false.
	PerMessageDeflate bool
	// CompressMinSize, with PerMessageDeflate, sends messages whose frame
	// is at least this many bytes compressed to the clients that
	// negotiated the extension (and left the server's window at 32 KiB).
	// A message is compressed once, by the first such recipient, and the
	// compressed frame is shared by all of them, as the plain one is; a
	// message that does not shrink goes plain. Worth it for large JSON to
	// clients on slow links: it costs CPU per message (about 10 µs for
	// 2 KiB) and saves bytes on every copy. 0 (the default) sends every
	// frame plain, as the original does.
	CompressMinSize int
	// CompressLevel is the flate level of those frames, from 1
	// (flate.BestSpeed) to 9 (flate.BestCompression). A message is
	// compressed once for all its recipients, so a higher level costs CPU
	// per message, not per delivery; but it is spent where the message is
	// sent from (the caller of a send, or for messages from the broker its
	// worker), and holds up what comes after it there. For a 256 KiB JSON
	// snapshot, level 1 made a frame of 24 % of the original size in
	// 2.6 ms, 6 (flate.DefaultCompression) 17 % in 18.5 ms, 9 17 % in
	// 25 ms (BenchmarkCompressLevel, one core of a 2-core EPYC). 0 means
	// 1, the default.
	CompressLevel int
	// Limits bound what one client, and the crowd of them, may ask of the
	// server (nesting depth, rooms, message rate, connection counts). The
	// zero value means the documented defaults; see Limits.
	Limits Limits
}

// Validate reports every option that cannot work, joined in one error.
func (o Options) Validate() error {
	var errs []error
	neg := func(name string, d time.Duration) {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative, got %v", name, d))
		}
	}
	neg("AuthTimeout", o.AuthTimeout)
	neg("HeartbeatInterval", o.HeartbeatInterval)
	neg("HeartbeatTimeout", o.HeartbeatTimeout)
	neg("IdleTimeout", o.IdleTimeout)
	neg("WriteTimeout", o.WriteTimeout)
	neg("SubscribeTimeout", o.SubscribeTimeout)
	neg("ShutdownSpread", o.ShutdownSpread)
	neg("MaxConnectionAge", o.MaxConnectionAge)
	if o.MaxPayloadLength < 0 {
		errs = append(errs, fmt.Errorf("MaxPayloadLength must not be negative, got %d", o.MaxPayloadLength))
	}
	if o.BackpressureLimit < 0 {
		errs = append(errs, fmt.Errorf("BackpressureLimit must not be negative, got %d", o.BackpressureLimit))
	}
	if o.SendBufferSize < 0 {
		errs = append(errs, fmt.Errorf("SendBufferSize must not be negative, got %d", o.SendBufferSize))
	}
	if o.EncryptedBatchLimit < 0 {
		errs = append(errs, fmt.Errorf("EncryptedBatchLimit must not be negative, got %d", o.EncryptedBatchLimit))
	}
	switch {
	case o.Path != "" && !strings.HasPrefix(o.Path, "/"):
		errs = append(errs, fmt.Errorf("Path must start with '/', got %q", o.Path))
	case strings.ContainsFunc(o.Path, func(r rune) bool { return strings.ContainsRune("?#{}%", r) || r <= ' ' || r == 0x7f }):
		// The path is compared with the request's decoded path, exactly:
		// no query, fragment, escape or mux wildcard can ever match.
		errs = append(errs, fmt.Errorf("Path must be a plain path (no query, fragment, %%-escape, wildcard or space): requests are matched on their exact path, got %q", o.Path))
	}
	for _, r := range o.DefaultRooms {
		if r == "" || strings.HasPrefix(r, protocol.InternalPrefix) {
			errs = append(errs, fmt.Errorf("DefaultRooms: %q is not a usable room name", r))
		}
	}
	if o.CompressMinSize < 0 {
		errs = append(errs, fmt.Errorf("CompressMinSize must not be negative, got %d", o.CompressMinSize))
	}
	if o.CompressLevel < 0 || o.CompressLevel > 9 {
		errs = append(errs, fmt.Errorf("CompressLevel must be 1 (BestSpeed) to 9 (BestCompression), or 0 for the default, got %d", o.CompressLevel))
	}
	if o.CompressMinSize > 0 && !o.PerMessageDeflate {
		errs = append(errs, errors.New("CompressMinSize needs PerMessageDeflate: no client can take compressed frames without the extension"))
	}
	if err := o.Limits.validate(); err != nil {
		errs = append(errs, err)
	}
	for _, p := range o.AllowedOrigins {
		if _, err := parseOriginPattern(p); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := parseTrustedProxies(o.TrustedProxies); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// withDefaults fills zero values.
func (o Options) withDefaults() Options {
	if o.Identifier == "" {
		o.Identifier = protocol.DefaultIdentifier
	}
	if o.Path == "" {
		o.Path = protocol.DefaultPath
	}
	if o.DefaultRooms == nil {
		o.DefaultRooms = protocol.DefaultRooms()
	} else {
		o.DefaultRooms = append([]string(nil), o.DefaultRooms...)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.AuthTimeout, protocol.DefaultAuthTimeout)
	def(&o.HeartbeatTimeout, protocol.DefaultHeartbeatTimeout)
	// A timeout shorter than the default wants a sweep to match: with 5 s
	// and the 30 s sweep, a dead client was found after up to 35 s.
	def(&o.HeartbeatInterval, min(protocol.DefaultHeartbeatInterval, max(o.HeartbeatTimeout/3, 10*time.Millisecond)))
	def(&o.IdleTimeout, protocol.DefaultIdleTimeout)
	def(&o.WriteTimeout, 10*time.Second)
	def(&o.SubscribeTimeout, 5*time.Second)
	def(&o.ReleaseMemoryAfter, 5*time.Second)
	if o.MaxPayloadLength == 0 {
		o.MaxPayloadLength = protocol.DefaultMaxPayloadLength
	}
	if o.BackpressureLimit == 0 {
		o.BackpressureLimit = protocol.DefaultBackpressureLimit
	}
	if o.EncryptedBatchLimit == 0 {
		o.EncryptedBatchLimit = protocol.DefaultEncryptedBatchLimit
	}
	if o.MaxEnvelopeLength == 0 {
		o.MaxEnvelopeLength = protocol.DefaultMaxEnvelopeLength
	}
	if o.CompressLevel == 0 {
		o.CompressLevel = flate.BestSpeed
	}
	o.Limits = o.Limits.withDefaults()
	if l := o.Limits.MaxUnauthenticatedPayload; l < 0 || l > o.MaxPayloadLength {
		o.Limits.MaxUnauthenticatedPayload = o.MaxPayloadLength
	}
	if o.Limits.InflatedBytesPerSecond > 0 && o.Limits.InflatedBurst < o.MaxPayloadLength {
		o.Limits.InflatedBurst = o.MaxPayloadLength
	}
	o.AllowedOrigins = append([]string(nil), o.AllowedOrigins...)
	o.TrustedProxies = append([]string(nil), o.TrustedProxies...)
	return o
}

// AuthenticateRequest is what the authenticate callback gets.
type AuthenticateRequest struct {
	// ClientID is the id the server gave the connection (a random UUID), the
	// one `connected` will carry.
	ClientID string
	// Data is the authenticate event's data, `{}` when absent.
	Data json.RawMessage
	// RemoteAddr is the client's address, as ClientView's: the client's
	// own behind a trusted proxy (Options.TrustedProxies).
	RemoteAddr string
	// Request is the HTTP upgrade request (headers, the TCP peer's
	// address). Its body is gone; do not read it.
	Request *http.Request
}

// AuthResult accepts a client. An empty UserID means anonymous.
type AuthResult struct {
	// UserID is who the client acts for: SendToUser reaches each of a user's
	// connections, on every instance.
	UserID string
	// Metadata is kept with the client as it is, not copied, and handed to
	// the later callbacks and in ClientView; the server never reads it.
	Metadata map[string]any
	// Rooms are joined for the client before `connected` is sent, next to
	// Options.DefaultRooms, without the room check, as JoinRoom does (an
	// extension): a player's match, a device's fleet, which the client is
	// then sure to be in when it hears `connected`, with the broker
	// subscribed for them. Internal names (ws:…) are skipped.
	Rooms []string
}

// AuthenticateFunc decides whether a client may use the server. A nil result
// rejects it ("Authentication failed", 4003); an error or panic is a failure
// ("Authentication error", 4003). It is required.
type AuthenticateFunc func(ctx context.Context, req AuthenticateRequest) (*AuthResult, error)

// ValidateRoomRequest is what the validate-room callback gets.
type ValidateRoomRequest struct {
	// ClientID is the client's id, what SendToClient and Disconnect take.
	ClientID string
	// UserID is the client's AuthResult.UserID, empty for an anonymous client.
	UserID string
	// Metadata is the client's AuthResult.Metadata (an extension: the
	// original passes only the ids). It is the client's own map, shared
	// by every call: read it, never change it.
	Metadata map[string]any
	// Rooms are the requested names that passed the protocol's checks.
	Rooms []string
}

// ValidateRoomFunc returns the subset of the requested rooms the client may
// join. It runs on the goroutine that reads the client, as MessageFunc
// does, with the same consequence for a slow call. Every name it returns is joined, requested or not, as in the
// original: return only what the client may join. Without one, clients
// cannot join rooms themselves. Names shaped like another client's id
// never reach it unless Options.AllowClientIDRooms. An error or a panic is
// logged and nothing of that join is joined; the client is not told (the
// protocol's join has no answer), as in the original.
type ValidateRoomFunc func(ctx context.Context, req ValidateRoomRequest) ([]string, error)

// ClientInfo identifies a client to the lifecycle callbacks.
type ClientInfo struct {
	// ClientID is the client's id, what SendToClient and Disconnect take.
	ClientID string
	// UserID is the client's AuthResult.UserID, empty for an anonymous client
	// or one that never authenticated.
	UserID string
	// Metadata is the client's AuthResult.Metadata, its own map: read it,
	// never change it. Nil for a client that never authenticated.
	Metadata map[string]any
	// Rooms are the client's rooms, sorted, its own-id room left out (an
	// extension): for the connected callback those joined before
	// `connected` (DefaultRooms, AuthResult.Rooms, and those the server
	// put it in meanwhile), for the disconnect callback those it was in
	// when it left. With RoomsChanged, enough to keep a presence list;
	// with Options.RoomsChangedByServer, the disconnect callback's are
	// exactly the connected callback's with every rooms-changed call
	// applied: a server change made as the client left, and not told, is
	// not in them (a join) or still in them (a leave).
	Rooms []string
	// How the session ended, for the disconnect callback (an extension;
	// empty for the others): the close code and reason of the first close
	// frame, and who sent it, CloseByServer (a timeout, a limit, a
	// protocol error, Disconnect, Shutdown: see the reason) or
	// CloseByClient. CloseCode is 1006 and ClosedBy empty for a
	// connection that ended without a close frame (a reset, a drop, a
	// failed write); CloseReason is then empty, or ReasonWriteTimeout for
	// a client cut because it took nothing for WriteTimeout.
	CloseCode   int
	CloseReason string
	ClosedBy    string
	// Connected, for the disconnect callback (an extension), says whether
	// the client got `connected`, and so had its connected callback run:
	// false for one that left, or was closed, while it authenticated,
	// whose UserID may be set all the same (its authenticate handler had
	// answered). A presence app removes only what its connected callback
	// added (a soak counted about 1 000 such callbacks an instance).
	Connected bool
}

// ReasonWriteTimeout is ClientInfo.CloseReason for a client cut because it
// accepted nothing for Options.WriteTimeout (CloseCode 1006: no close
// frame could reach it): a client too slow, told from one gone.
const ReasonWriteTimeout = "Write timeout"

// Who closed a session (ClientInfo.ClosedBy).
const (
	CloseByServer = "server"
	CloseByClient = "client"
)

// ClientConnectedFunc runs after a client has authenticated and received
// `connected`. Its error is logged; it never disconnects anyone. Its
// context is the client's: it ends when the client leaves, which may be
// before the callback starts. The client's disconnect callback runs after
// this one has returned, so what it adds (presence) the other removes.
type ClientConnectedFunc func(ctx context.Context, info ClientInfo) error

// RoomsChangedRequest is what the rooms-changed callback gets.
type RoomsChangedRequest struct {
	// ClientID is the client's id, what SendToClient and Disconnect take.
	ClientID string
	// UserID is the client's AuthResult.UserID, empty for an anonymous client.
	UserID string
	// Metadata is the client's, read-only, as ClientInfo's.
	Metadata map[string]any
	// Joined or Left (the other is empty) are the rooms a change added or
	// removed, in the order it named them: not those the room check
	// refused, nor those the client was already in, or not in. With
	// Options.RoomsChangedByServer its own-id room is never among them
	// (ClientInfo.Rooms leaves it out too; without the option, a client
	// the server took out of it that joins it again is told).
	Joined, Left []string
	// ByServer is true for a change the server made (JoinRoom, LeaveRoom,
	// AddUserToRooms, RemoveUserFromRooms, here or elsewhere), told with
	// Options.RoomsChangedByServer; false for the client's own join or
	// leave.
	ByServer bool
}

// RoomsChangedFunc is told of each join or leave of a client's own that
// changed its rooms (an extension: the original has no such hook), once
// it has: a join's rooms already get what is sent to them, from this
// instance and the others (the broker has confirmed their channels, or
// SubscribeTimeout has passed; a room's state read here and sent to the
// newcomer then misses nothing sent to the room after it). It runs on the
// goroutine that reads the client, in order with its messages, as
// MessageFunc does. It is where a newcomer gets what it needs of a room
// (SendToClient), or where a presence list is kept, with ClientInfo.Rooms
// in the connected and disconnect callbacks. Its error or panic is logged
// and counted in Stats().HandlerErrors.
//
// Server-side changes (JoinRoom and LeaveRoom, AddUserToRooms and
// RemoveUserFromRooms, from this instance, another one or an emitter) do
// not call it, unless Options.RoomsChangedByServer. With it, each change
// that altered the client's rooms after the connected callback's
// ClientInfo.Rooms were taken is told once (ByServer set), on the
// instance holding the client: one that came before is in those rooms,
// one that changed nothing (a room it was in already, an order's second
// copy) is not told. The server's changes are told from a goroutine
// started for them, not from the caller of JoinRoom nor the broker's
// worker, which do not wait for the call (ctx is the client's still);
// their joins, like the client's, once the rooms' channels are
// subscribed. The calls for one client come one at a time, never before
// its connected callback has returned, in the order the changes were
// made, the server's and its own together: its own join or leave waits
// for a call under way to return, and the server's changes made before it
// are told before it, on the goroutine that reads the client. Changes of one kind
// and one maker made one after another (one AddUserToRooms of several
// rooms, joins made while a call ran) may come in one call; a join or
// leave of the client's own comes in two (or more) if the server changed
// its rooms while it applied it. Once the client's context has ended (it is
// leaving), nothing more is told, and a call under way returns before
// the disconnect callback begins: that callback's ClientInfo.Rooms are
// then the rooms the app was told of. The goroutines telling the server's
// changes run side by side, one per client with changes to tell: an
// AddUserToRooms for a crowd of users runs as many calls at once as it
// moves connections, so a handler that does I/O should take a slot of a
// semaphore of its own, as the disconnect callback's.
type RoomsChangedFunc func(ctx context.Context, req RoomsChangedRequest) error

// ClientDisconnectedFunc runs after a client is gone, authenticated or not,
// and after its connected callback has returned (whose context ends when
// the client leaves: one that ignores it holds this callback, and a
// warning says so after 10 s). Its error is logged.
// Its context is not the client's (that one has ended) and has no
// deadline: Shutdown waits for these callbacks within its own context, so
// one that may block should bound itself.
//
// It runs on the goroutine that ends the client, so as many run at once as
// clients leave at once: when an instance stops, or a network drop takes a
// crowd of clients, thousands (an IoT trial's stop of an instance of 12 000
// devices ran 8 500 at once, and its Redis calls in them timed out). A
// callback that does I/O should take a slot of a semaphore of its own;
// ShutdownSpread spreads a stop's.
type ClientDisconnectedFunc func(ctx context.Context, info ClientInfo) error

// BrokerRestoredFunc runs after the broker has subscribed again, following
// the loss of its subscription (a Redis restart, a failover, a cut
// connection): what other instances and emitters published meanwhile never
// reached this instance's clients, and what the app kept in a Redis without
// persistence may be gone. It is where an app sends its state again (a
// feed's latest values, as protocol.Latest, so that a client that had them
// is not sent them twice) and rewrites what it keeps in Redis (presence).
//
// Calls come one at a time, from a goroutine of the helper's own;
// restorations while a call runs are taken together by the next call. Its
// context ends when the helper shuts down. Its error or panic is logged and
// counted in Stats().HandlerErrors. Only a broker that implements
// broker.RestoreNotifier (the Redis broker) reports restorations; with
// another one it is never called.
type BrokerRestoredFunc func(ctx context.Context, info BrokerRestoredInfo) error

// BrokerRestoredInfo says what a BrokerRestoredFunc call covers.
type BrokerRestoredInfo struct {
	// Restorations is how many times the subscription was made again since
	// the previous call: more than one when Redis kept failing while that
	// call ran.
	Restorations int
	// Down is how long the broker was without its subscription, the
	// longest of those restorations: from the moment it found the
	// subscription lost (a cut connection at once, a silent one up to
	// ProbeInterval + 2 × PingTimeout later) to the moment it had it back.
	Down time.Duration
}

// MessageRequest is an application message from an authenticated client.
type MessageRequest struct {
	// ClientID is the client's id, what SendToClient and Disconnect take.
	ClientID string
	// UserID is the client's AuthResult.UserID, empty for an anonymous client.
	UserID string
	// Metadata is the client's AuthResult.Metadata, as in
	// ValidateRoomRequest: read it, never change it.
	Metadata map[string]any
	// Message is what the client sent: the event, its data as raw JSON, and
	// its id if it gave one. For an `encrypted` event opened by the inbound
	// transformer, it is the message inside.
	Message protocol.Message
	// Encrypted is true for a message that came sealed and was opened by
	// the inbound transformer. RequireEncryption seals what the server
	// sends; a client may still send plain events (the original takes
	// them too): an app that must have every message sealed refuses those
	// without it.
	Encrypted bool
}

// MessageFunc handles application events. Its error or panic is logged; the
// connection stays open. Messages of one client are handled one at a time,
// in order, on the goroutine that reads the client: while a call runs,
// nothing more is read from that client, its heartbeats and pongs
// included, so the heartbeat and idle sweeps go by what the kernel says
// of the client's socket instead: a client still sending is kept however
// long the call takes; one that dropped its connection (its side closed,
// or reset, with no close frame among what it sent) is let go within two
// seconds, which ends ctx; one that closed in order (a close frame, then
// its side, even if its kernel then resets the connection) is let finish,
// and the call's ctx lasts; one silent for
// HeartbeatTimeout is closed 4002 as ever. Over TLS (srv.ServeTLS) the
// bytes received by the socket under it keep a client that sends on, but
// what it sent cannot be read for a close frame: a client that dropped
// waits for the timeouts. ctx
// ends when the client goes (closed by the app, a limit, a timeout, a
// drop, or Shutdown). Hand work that may take long to a
// goroutine of your own and answer with a send, so that the client's next
// messages are not kept waiting.
type MessageFunc func(ctx context.Context, req MessageRequest) error

// HandshakeRequest is what the handshake callback gets, during
// authentication, when encryption is required.
type HandshakeRequest struct {
	// ClientID is the client's id, what SendToClient and Disconnect take.
	ClientID string
	// UserID is the AuthResult.UserID just returned, empty for an anonymous
	// client.
	UserID string
	// Data is the authenticate event's data.
	Data json.RawMessage
}

// HandshakeResult enables encryption for a client; both fields are sent to
// it in the `connected` event.
type HandshakeResult struct {
	// ServerPublicKey is the server's public key for this client, in the form
	// the client's scheme expects (Ignis ECDH: base64 of a raw P-256 point).
	ServerPublicKey string
	// Salt is the key-derivation salt the client uses with ServerPublicKey
	// (Ignis ECDH: 32 random bytes in base64).
	Salt string
}

// HandshakeFunc negotiates a client's encryption. A nil result or an error
// closes the client with 4004 after "Encryption handshake failed".
type HandshakeFunc func(ctx context.Context, req HandshakeRequest) (*HandshakeResult, error)

// OutboundRequest is one message on its way to one encrypted client.
type OutboundRequest struct {
	// Client describes the recipient. It is built for every message, so
	// it is a light snapshot: Rooms is not filled (use GetClient if you
	// need them) and Metadata is the client's own map: do not modify it.
	Client ClientView
	// Event is the message's event name.
	Event string
	// Data is the message's data as JSON; nil when the message has none.
	Data json.RawMessage
}

// OutboundTransformerFunc rewrites a message for one encrypted client (for
// example into an `encrypted` event). A nil result sends the message as it
// is; an error drops it for that client (logged). For a local send it runs
// on the sending goroutine, which waits for it (a few clients at a time,
// Options.EncryptedBatchLimit). For a message from another instance or an
// emitter it runs off the broker's worker, each client's messages in
// order, at most EncryptedBatchLimit calls at once: a slow call holds up
// that client's later messages, and while all the calls are slow, every
// encrypted client's; past 1024 waiting for one client, its messages are
// dropped (DroppedBackpressure). Keep it to computation (the built-in ECDH
// one seals in microseconds).
type OutboundTransformerFunc func(ctx context.Context, req OutboundRequest) (*protocol.Message, error)

// InboundRequest is an `encrypted` event sent by an encrypted client.
type InboundRequest struct {
	// ClientID is the client's id, what SendToClient and Disconnect take.
	ClientID string
	// UserID is the client's AuthResult.UserID, empty for an anonymous client.
	UserID string
	// Message is the `encrypted` event as received: Data holds the sealed
	// payload.
	Message protocol.Message
}

// InboundTransformerFunc turns an `encrypted` event of an encrypted client
// into the message it stands for (for example by decrypting it); the result
// is then dispatched as if the client had sent it in plain text (heartbeat,
// join, leave or an application event). An error drops the message (logged).
// This is an extension: the original passes such events to the message
// callback unchanged.
type InboundTransformerFunc func(ctx context.Context, req InboundRequest) (protocol.Message, error)

// Handlers are the application's callbacks. Only Authenticate is required.
type Handlers struct {
	// Authenticate decides who may use the server. Required.
	Authenticate AuthenticateFunc
	// ValidateRoom picks the rooms a client's join may enter; nil means
	// clients cannot join rooms themselves.
	ValidateRoom ValidateRoomFunc
	// ClientConnected is called once a client has got `connected`.
	ClientConnected ClientConnectedFunc
	// ClientDisconnected is called after any client is gone.
	ClientDisconnected ClientDisconnectedFunc
	// RoomsChanged is told of each join or leave of a client's own that
	// changed its rooms, and with Options.RoomsChangedByServer of the
	// server's changes too.
	RoomsChanged RoomsChangedFunc
	// Message handles application events; nil means they are dropped.
	Message MessageFunc
	// Handshake negotiates a client's encryption; New requires it when
	// Options.RequireEncryption is set.
	Handshake HandshakeFunc
	// OutboundTransformer rewrites each message to an encrypted client; nil
	// means encrypted clients get messages as they are.
	OutboundTransformer OutboundTransformerFunc
	// InboundTransformer opens the `encrypted` events of encrypted clients;
	// nil means they reach Message as they are, as in the original.
	InboundTransformer InboundTransformerFunc
	// BrokerRestored is told that the broker subscribed again after losing
	// its subscription; nil means nothing is called.
	BrokerRestored BrokerRestoredFunc
}

// Config is everything New needs.
type Config struct {
	// Options are the server's settings; a zero field means its default.
	Options Options
	// Handlers are the application's callbacks; Authenticate is required.
	Handlers Handlers
	// Broker carries envelopes to other instances. Nil means an in-process
	// broker: a single instance.
	Broker broker.Broker
	// Logger receives the helper's logs. Nil means no logging.
	Logger *zap.Logger
}

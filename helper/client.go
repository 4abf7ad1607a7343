package helper

import (
	"context"
	"maps"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxws/websocket/protocol"
	"github.com/gobwas/ws"
)

// client is one WebSocket connection. Its identity fields are written once,
// before the client becomes authenticated, and read freely after; its rooms
// belong to the registry's lock; its outbound queue to wmu.
type client struct {
	// What a fan-out reads of each recipient comes first, next to the
	// outbound queue it appends to (whose lock and queue open it), so that
	// a delivery reaches two cache lines of the client and nothing else.
	h           *WebSocketServerHelper
	state       atomic.Int32 // a stateIndex
	shard       uint8        // the flusher shard that writes its fan-out frames
	compressOut bool         // takes compressed frames (Options.CompressMinSize)
	// logRooms: the changes of its rooms go to the rooms-changed log
	// (Options.RoomsChangedByServer), from the snapshot of its rooms for
	// the connected callback on. Guarded by the registry lock; here, in
	// what would be padding, to keep the struct in its size class.
	logRooms bool
	out      outbound

	id   string
	conn net.Conn
	raw  *rawConn // nil when the conn is not a plain socket

	// Read side: the frame reader's state, and who owns it. A polled
	// connection is read in bursts by short-lived goroutines; reading is
	// held by the one running (and for good once the connection is over).
	rd      reader
	reading atomic.Bool
	fd      atomic.Int32 // the socket's descriptor while the poller watches it, else -1

	lastActivity atomic.Int64 // unix nanos of the last data frame
	lastSeen     atomic.Int64 // unix nanos of the last frame of any kind
	// appSince is when the read side handed one of the client's messages
	// to the app's code (or began waiting for it), 0 when it has none;
	// appDone, when the app last gave one back. Nothing is read from the
	// client meanwhile, its heartbeats included, so the sweeps look at the
	// socket instead (see heardWhileBusy): the server's slowness must not
	// get a faithful client closed (the original reads on while its
	// handlers run).
	appSince, appDone atomic.Int64
	// closed is how the session ended, set once by whoever closed first
	// (see noteClose); nil for a connection that dropped without a close.
	closed      atomic.Pointer[closeNote]
	connectedAt int64 // unix nanos
	remoteAddr  string
	rate        rateLimiter   // inbound message budget; the read side's alone
	inflated    inflateBudget // inflated-byte budget; the read side's alone

	mu sync.Mutex
	// done is closed once the client is gone or being closed; it is made
	// on first use (most connections never need one); ended, with the
	// flags below, says the closing happened.
	done      chan struct{}
	req       *http.Request // upgrade request, kept until authentication ends
	authTimer *time.Timer
	info      identity
	// hookPending is open while the client-connected callback runs: the
	// client's own messages wait for it, so the application always sees
	// "connected" before anything the client sends after it.
	hookPending chan struct{}

	// Guarded by the registry lock.
	rooms     []string // shared rooms, in join order
	inOwnRoom bool     // member of the room named by its own id
	gone      bool     // removed from the registry for good
	bound     bool     // indexed under its user and own channel
	ended     bool     // guarded by mu, not the registry lock: see done
	// forgiven is the read side's alone (see rateLimiter.allow); it sits
	// here, in what would be padding, to keep the struct in its size
	// class.
	forgiven  uint32
	boundUser string // the user it is indexed under
}

// identity is what authentication decided about a client.
type identity struct {
	userID   string
	metadata map[string]any
	keys     *handshakeKeys // set when the encryption handshake succeeded
}

// handshakeKeys are what an encrypted client was told in `connected`; only
// encrypted clients pay for them.
type handshakeKeys struct{ serverPublicKey, salt string }

func (i *identity) encrypted() bool { return i.keys != nil }

// publicKeys returns the handshake's server public key and salt, if any.
func (i *identity) publicKeys() (serverPublicKey, salt string) {
	if i.keys == nil {
		return "", ""
	}
	return i.keys.serverPublicKey, i.keys.salt
}

const (
	stUnauthorized int32 = iota
	stAuthenticating
	stAuthenticated
	stDisconnected
)

var stateNames = [...]protocol.ClientState{
	stUnauthorized:   protocol.StateUnauthorized,
	stAuthenticating: protocol.StateAuthenticating,
	stAuthenticated:  protocol.StateAuthenticated,
	stDisconnected:   protocol.StateDisconnected,
}

func (c *client) authenticated() bool { return c.state.Load() == stAuthenticated }

// payloadLimit is the longest message the client may send now (inflated
// size for a compressed one): Limits.MaxUnauthenticatedPayload until it has
// authenticated, MaxPayloadLength after.
func (c *client) payloadLimit() int {
	if c.authenticated() {
		return c.h.opts.MaxPayloadLength
	}
	return c.h.opts.Limits.MaxUnauthenticatedPayload
}

func (c *client) identity() identity {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.info
}

// endContext ends the client's context; it is idempotent.
func (c *client) endContext() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return
	}
	c.ended = true
	if c.done != nil {
		close(c.done)
	}
}

// doneChan is the channel closed by endContext, made on first use.
func (c *client) doneChan() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.ended {
			close(c.done)
		}
	}
	return c.done
}

// contextEnded reports whether endContext has run.
func (c *client) contextEnded() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ended
}

// context returns a context that ends when the client disconnects (or the
// server starts closing it), for the
// callbacks that run on its behalf. It costs no allocation beyond its header.
func (c *client) context() context.Context { return clientContext{c} }

type clientContext struct{ c *client }

func (clientContext) Deadline() (time.Time, bool) { return time.Time{}, false }
func (x clientContext) Done() <-chan struct{}     { return x.c.doneChan() }
func (x clientContext) Err() error {
	if x.c.contextEnded() {
		return context.Canceled
	}
	return nil
}
func (x clientContext) Value(key any) any {
	if key == (clientKey{}) {
		return x.c
	}
	return nil
}

// clientKey finds the client whose context (or one derived from it) a
// call was made with: DisconnectUserEverywhere spares the connection whose
// authenticate callback calls it.
type clientKey struct{}

// ClientView is a snapshot of one client, safe to keep and share.
type ClientView struct {
	// ID is the client's id: a random UUID, also the name of its own room.
	ID string
	// UserID is the user its authenticate callback named (AuthResult.UserID).
	UserID string // empty for anonymous clients
	// State is where the client stands in the authentication lifecycle.
	State protocol.ClientState
	// Rooms are the rooms the client is in, its own-id room included; nil in
	// the outbound transformer's snapshot.
	Rooms []string // sorted
	// Metadata is the client's AuthResult.Metadata: a shallow copy from
	// GetClient and the like, the client's own map in OutboundRequest.
	Metadata map[string]any
	// Encrypted is true once the encryption handshake succeeded.
	Encrypted bool
	// ServerPublicKey and Salt are what the encryption handshake returned
	// (HandshakeResult), as sent in `connected`; empty unless Encrypted.
	ServerPublicKey string
	Salt            string
	// RemoteAddr is the client's address: the TCP peer's (ip:port), or
	// behind a trusted proxy (Options.TrustedProxies) the client's own IP
	// from the forwarding headers.
	RemoteAddr string
	// ConnectedAt is when the connection was upgraded.
	ConnectedAt time.Time
	// LastActivity is when the client last sent a message, or got
	// `connected`: the clock of the heartbeat sweep. Pings and pongs do not
	// count.
	LastActivity time.Time
	// Backlog is how many bytes sent to the client are queued for it and
	// not yet acknowledged by it: those in the helper (bounded by
	// BackpressureLimit) and, on Linux, those in the socket's send queue
	// (under TLS too). A client whose backlog keeps growing is not
	// keeping up.
	// Zero in the outbound transformer's snapshot.
	Backlog int
}

// lightView is the snapshot handed to the outbound transformer for every
// message: no registry lock, no copies. Rooms is left empty and Metadata is
// the client's own map (read-only by contract).
func (c *client) lightView() ClientView {
	info := c.identity()
	pub, salt := info.publicKeys()
	return ClientView{
		ID:              c.id,
		UserID:          info.userID,
		State:           stateNames[c.state.Load()],
		Metadata:        info.metadata,
		Encrypted:       info.encrypted(),
		ServerPublicKey: pub,
		Salt:            salt,
		RemoteAddr:      c.remoteAddr,
		ConnectedAt:     time.Unix(0, c.connectedAt),
		LastActivity:    time.Unix(0, c.lastActivity.Load()),
	}
}

// view snapshots c; the caller holds the registry's read lock (for rooms).
func (c *client) view() ClientView {
	info := c.identity()
	rooms := make([]string, 0, len(c.rooms)+1)
	rooms = append(rooms, c.rooms...)
	if c.inOwnRoom {
		rooms = append(rooms, c.id)
	}
	slices.Sort(rooms)
	pub, salt := info.publicKeys()
	return ClientView{
		ID:              c.id,
		UserID:          info.userID,
		State:           stateNames[c.state.Load()],
		Rooms:           rooms,
		Metadata:        maps.Clone(info.metadata),
		Encrypted:       info.encrypted(),
		ServerPublicKey: pub,
		Salt:            salt,
		RemoteAddr:      c.remoteAddr,
		ConnectedAt:     time.Unix(0, c.connectedAt),
		LastActivity:    time.Unix(0, c.lastActivity.Load()),
	}
}

// closeNote is how a session ended, for the disconnect callback.
type closeNote struct {
	code   ws.StatusCode
	reason string
	by     string // CloseByServer or CloseByClient
	idle   bool   // the idle sweep's close (Stats.IdleTimeouts)
}

// noteClose records how the session ends, unless that is known already:
// the first close, from either side, is the one that ended it.
func (c *client) noteClose(code ws.StatusCode, reason, by string) {
	c.note(&closeNote{code: code, reason: reason, by: by})
}

func (c *client) note(n *closeNote) {
	if c.closed.Load() == nil {
		c.closed.CompareAndSwap(nil, n)
	}
}

// backlog is ClientView.Backlog: the helper's queue for c and the kernel's
// send queue. It takes a system call: asked for outside the registry lock.
func (c *client) backlog() int {
	c.out.mu.Lock()
	n := c.out.queued
	c.out.mu.Unlock()
	if q, ok := c.socket().unsent(); ok {
		n += q
	}
	return n
}

// socket is what the kernel can be asked about c's connection: its
// rawConn, or one over the socket under its TLS (made for the call: asked
// only of clients in a standstill and by the introspection calls); nil
// when there is no socket to ask.
func (c *client) socket() *rawConn {
	if c.raw != nil {
		return c.raw
	}
	if sock := socketOf(c.conn); sock != c.conn {
		r, _ := newRawConn(sock)
		return r
	}
	return nil
}

// socketOf is the connection under conn's TLS, or conn.
func socketOf(conn net.Conn) net.Conn {
	if tc, ok := conn.(interface{ NetConn() net.Conn }); ok {
		return tc.NetConn()
	}
	return conn
}

// awaitConnectedCallback waits until the client's connected callback, if
// one is running, has returned (what the app adds there comes before what
// follows), or the client has ended: false then.
func (c *client) awaitConnectedCallback() bool {
	c.mu.Lock()
	hook := c.hookPending
	c.mu.Unlock()
	if hook == nil {
		return true
	}
	select {
	case <-hook:
		return true
	case <-c.doneChan():
		return false
	}
}

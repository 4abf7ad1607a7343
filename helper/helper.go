// Package helper is the WebSocket server of the Ignis protocol: it upgrades
// connections on gobwas/ws, runs each client through authentication, keeps
// the client, room and user indexes, delivers messages locally and through a
// broker to other instances, and shuts down gracefully.
//
// It is usable without fx: build a Config, call New, mount the helper as an
// http.Handler, call Start, and Shutdown when done.
package helper

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/internal/logthrottle"
	"github.com/fxws/websocket/protocol"
	"github.com/gobwas/ws"
	"github.com/google/uuid"
	"go.uber.org/zap"
)

// WebSocketServerHelper is the server. It is safe for concurrent use; every
// send method may be called from any goroutine, before or after Start.
type WebSocketServerHelper struct {
	opts     Options
	handlers Handlers
	broker   broker.Broker
	log      *zap.Logger
	serverID string

	reg  *registry
	subs *subscriptions

	upgrader ws.HTTPUpgrader
	// checkOrigin is the AllowedOrigins allowlist; nil when there is none.
	checkOrigin func(*http.Request) bool
	// trusted are the proxies whose forwarding headers are believed.
	trusted trustedProxies

	// open and pending count this instance's connections and those not
	// authenticated yet, for Limits.MaxConnections and
	// MaxPendingConnections: a slot is taken before the upgrade and given
	// back by disconnect (pending: at authentication, or by disconnect
	// for a client that never got there).
	open, pending atomic.Int64

	started  atomic.Bool // Start was called (and has not failed)
	ready    atomic.Bool // Start succeeded: connections are accepted
	closing  atomic.Bool
	acceptMu sync.Mutex // orders registering a connection against Shutdown
	stopOnce sync.Once
	cancel   context.CancelFunc
	loops    sync.WaitGroup // heartbeat and subscription goroutines
	conns    sync.WaitGroup // read loops
	// inDisconnect counts the read loops inside the disconnect callback,
	// for Shutdown to say what held it.
	inDisconnect atomic.Int64
	tasks        sync.WaitGroup // callbacks running off the read loops
	// tasksWaited: Shutdown waits for tasks now, once the connections
	// are closed; guarded by acceptMu (see goTaskUntilTasksWaited).
	tasksWaited bool

	// epoch is the origin of the rate limits' clock (see mono).
	epoch time.Time
	// fences keep a user's recent closes and room removals from being
	// undone by what was under way for the user (see fences).
	fences fences
	// orders applies the two copies of each join-user and leave-user
	// order once.
	orders userOrders

	// Warnings that a Redis outage or junk on a channel repeat thousands
	// of times a second go out at most once a second each.
	publishLog, envelopeLog, transformLog, clientIDRoomLog, encQueueLog, limitLog, subscribeLog, hookLog logthrottle.Throttle
	// enc transforms the broker's messages for encrypted clients off the
	// broker's worker.
	enc *encQueue

	poller *poller // nil: every connection has a read goroutine
	bursts *burstPool
	flush  *flusher
	// selfPrefix starts every envelope this instance publishes, so that
	// its own come back are dropped before decoding.
	selfPrefix []byte
	// errorMessages holds the error events the protocol sends, each built
	// once: a flood of junk or a client that is not authenticated yet is
	// answered with a frame that costs no encoding.
	errorMessages map[string]*outgoing

	stats counters
}

// New checks cfg and builds a helper. It does no I/O.
func New(cfg Config) (*WebSocketServerHelper, error) {
	if cfg.Handlers.Authenticate == nil {
		return nil, errors.New("websocket: an authenticate handler is required")
	}
	if err := cfg.Options.Validate(); err != nil {
		return nil, fmt.Errorf("websocket: invalid options: %w", err)
	}
	if cfg.Options.RequireEncryption && cfg.Handlers.Handshake == nil {
		return nil, errors.New("websocket: RequireEncryption needs a handshake handler")
	}
	opts := cfg.Options.withDefaults()
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	b := cfg.Broker
	if b == nil {
		b = broker.NewMemory()
	}
	serverID := opts.ServerID
	if serverID == "" {
		serverID = uuid.NewString()
	}
	log = log.With(zap.String("ws", opts.Identifier), zap.String("serverId", serverID))
	if opts.RequireEncryption && cfg.Handlers.OutboundTransformer == nil {
		// Allowed, as in the original, but rarely meant.
		log.Warn("RequireEncryption is set without an outbound transformer: clients that completed the handshake get every message in plain text")
	}
	h := &WebSocketServerHelper{
		opts:     opts,
		handlers: cfg.Handlers,
		broker:   b,
		log:      log,
		serverID: serverID,
		epoch:    time.Now(),
		fences:   fences{keep: fenceFor(opts.AuthTimeout)},
		orders:   userOrders{keep: fenceFor(opts.AuthTimeout)},
	}
	h.checkOrigin = originChecker(opts.AllowedOrigins)
	h.trusted, _ = parseTrustedProxies(opts.TrustedProxies) // validated above
	h.selfPrefix = append(protocol.AppendJSONString([]byte(`{"serverId":`), serverID), ',')
	h.errorMessages = make(map[string]*outgoing)
	for _, text := range []string{protocol.ErrTextInvalidFormat, protocol.ErrTextNotAuthenticated,
		protocol.ErrTextAlreadyAuthenticated, protocol.ErrTextAuthFailed, protocol.ErrTextAuthError,
		protocol.ErrTextHandshakeFailed, errTextRateLimited, protocol.ErrTextJoinTooLarge, protocol.ErrTextRoomLimit} {
		h.errorMessages[text] = newErrorMessage(text)
	}
	h.flush = newFlusher()
	h.enc = newEncQueue(h)
	h.subs = newSubscriptions(b, log)
	h.reg = newRegistry(h.subs)
	h.reg.pause = h.pause
	if opts.RoomsChangedByServer {
		if cfg.Handlers.RoomsChanged != nil {
			h.reg.log = newRoomLogs()
			h.reg.startTeller = h.startRoomsTeller
		} else {
			log.Warn("RoomsChangedByServer is set without a rooms-changed handler: nothing is told")
		}
	}
	return h, nil
}

// ServerID is this instance's id on the broker.
func (h *WebSocketServerHelper) ServerID() string { return h.serverID }

// Path is where the helper upgrades connections.
func (h *WebSocketServerHelper) Path() string { return h.opts.Path }

// Options returns the options in force, defaults filled in.
func (h *WebSocketServerHelper) Options() Options { return h.opts }

// subscribeBroadcast subscribes to broadcasts, and waits, until ctx ends,
// while the broker keeps the change for a connection it does not have yet:
// in the Redis broker's sharded mode the connection to the master owning
// ws:broadcast's slot is separate from the others, and may be down (a
// failover under way) when the broker itself has started (found in a
// cluster trial: the start failed at once).
func (h *WebSocketServerHelper) subscribeBroadcast(ctx context.Context) error {
	wait := 100 * time.Millisecond
	for {
		err := h.broker.Subscribe(ctx, protocol.ChannelBroadcast)
		if err == nil || !errors.Is(err, broker.ErrChangeKept) {
			return err
		}
		h.log.Warn("broadcast channel not subscribed yet; retrying", zap.Error(err), zap.Duration("backoff", wait))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, time.Second)
	}
}

// Start connects the broker, subscribes to broadcasts and starts the
// heartbeat. Connections are accepted only after Start.
func (h *WebSocketServerHelper) Start(ctx context.Context) error {
	if h.closing.Load() {
		return errors.New("websocket: helper already shut down")
	}
	if !h.started.CompareAndSwap(false, true) {
		return errors.New("websocket: helper already started")
	}
	if err := h.broker.Start(ctx, h.onBrokerMessage); err != nil {
		h.started.Store(false)
		return fmt.Errorf("websocket: start broker: %w", err)
	}
	if err := h.subscribeBroadcast(ctx); err != nil {
		h.started.Store(false)
		_ = h.broker.Close()
		return fmt.Errorf("websocket: subscribe %s: %w", protocol.ChannelBroadcast, err)
	}
	if !h.opts.DisablePoller {
		p, err := newPoller()
		if err != nil {
			h.log.Warn("epoll poller unavailable; reading every connection from a goroutine of its own", zap.Error(err))
		} else {
			h.poller = p
			h.bursts = newBurstPool()
			h.loops.Add(1)
			go func() { defer h.loops.Done(); p.run() }()
		}
	}
	h.flush.start()
	loopCtx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.loops.Add(2)
	go func() { defer h.loops.Done(); h.subs.run(loopCtx) }()
	go func() { defer h.loops.Done(); h.heartbeat(loopCtx) }()
	if h.opts.ReleaseMemoryAfter > 0 {
		h.loops.Add(1)
		go func() { defer h.loops.Done(); h.releaseMemory(loopCtx) }()
	}
	if watch := h.watchRestorations(); watch != nil {
		// A task, not a loop: Shutdown waits for the app's callback only
		// as long as its context allows.
		h.goTask(func() { watch(loopCtx) })
	}
	// Only now: a connection accepted while the broker was starting would
	// be left open, and out of Shutdown's reach, if Start then failed.
	h.ready.Store(true)
	h.log.Info("websocket server ready", zap.String("path", h.opts.Path))
	return nil
}

// ServeHTTP upgrades a request on the configured path to a WebSocket
// connection. Other paths get 404; requests before Start or during shutdown
// get 503.
func (h *WebSocketServerHelper) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != h.opts.Path {
		http.NotFound(w, r)
		return
	}
	if !h.ready.Load() || h.closing.Load() {
		http.Error(w, "WebSocket server not accepting connections", http.StatusServiceUnavailable)
		return
	}
	if (h.checkOrigin != nil && !h.checkOrigin(r)) || (h.opts.CheckOrigin != nil && !h.opts.CheckOrigin(r)) {
		h.stats.refusedOrigin.Add(1)
		h.log.Debug("upgrade refused: origin not allowed", zap.String("origin", r.Header.Get("Origin")), zap.String("remoteAddr", h.trusted.clientAddr(r)))
		http.Error(w, "Origin not allowed", http.StatusForbidden)
		return
	}
	if !h.reserveSlots() {
		h.stats.refusedAtLimit.Add(1)
		if ok, n := h.limitLog.Allow(); ok {
			h.log.Warn("upgrade refused: connection limit reached (Limits.MaxConnections or MaxPendingConnections)",
				zap.String("remoteAddr", h.trusted.clientAddr(r)), zap.Int64("open", h.open.Load()),
				zap.Int64("pending", h.pending.Load()), zap.Uint64("suppressed", n))
		}
		http.Error(w, "Too many connections", http.StatusServiceUnavailable)
		return
	}
	upgrader, deflate := h.upgraderFor(r)
	conn, rw, _, err := upgrader.Upgrade(r, w)
	if err != nil {
		h.releaseSlots()
		h.log.Debug("upgrade failed", zap.Error(err), zap.String("remoteAddr", h.trusted.clientAddr(r)))
		return
	}
	var pending []byte
	if n := rw.Reader.Buffered(); n > 0 {
		pending, _ = rw.Reader.Peek(n)
		pending = append([]byte(nil), pending...)
	}
	h.attach(conn, r.WithContext(context.Background()), pending, deflate)
}

// attach registers an upgraded connection and starts reading it: pending
// is what the client sent after its upgrade request and was read with it,
// deflate the compression negotiated (nil: none). Both upgrade paths end
// here, the one through net/http (ServeHTTP) and the direct one
// (Serve), holding the slots reserveSlots took. False: the server is
// shutting down, and the connection was closed 1001.
func (h *WebSocketServerHelper) attach(conn net.Conn, r *http.Request, pending []byte, deflate *deflateNegotiation) bool {
	now := time.Now()
	if size := h.opts.SendBufferSize; size > 0 {
		if tc, ok := socketOf(conn).(interface{ SetWriteBuffer(int) error }); ok {
			_ = tc.SetWriteBuffer(size)
		}
	}
	raw, sock := newRawConn(conn)
	c := &client{
		id:          uuid.NewString(),
		h:           h,
		conn:        conn,
		raw:         raw,
		shard:       h.flush.shardFor(),
		connectedAt: now.UnixNano(),
		remoteAddr:  h.trusted.clientAddr(r),
		req:         r,
	}
	c.out.sock = sock
	c.lastActivity.Store(now.UnixNano())
	c.lastSeen.Store(now.UnixNano())
	c.fd.Store(-1)
	// Register only while Shutdown has not begun: once it has, it may be
	// waiting on h.conns already, and a WaitGroup must not grow from zero
	// under a running Wait; nor would Shutdown see this client.
	h.acceptMu.Lock()
	if h.closing.Load() {
		h.acceptMu.Unlock()
		h.releaseSlots()
		_ = conn.SetWriteDeadline(now.Add(closeGrace))
		_, _ = conn.Write(closeFrame(ws.StatusGoingAway, protocol.ReasonShuttingDown))
		_ = conn.Close()
		return false
	}
	h.conns.Add(1)
	h.reg.add(c)
	h.acceptMu.Unlock()
	h.stats.connections.Add(1)
	c.mu.Lock()
	c.authTimer = time.AfterFunc(h.opts.AuthTimeout, func() { h.authTimedOut(c, stUnauthorized) })
	c.mu.Unlock()
	h.log.Debug("client connected (unauthorized)", zapClient(c.id))
	c.rd.pending = pending
	c.rd.deflate = deflate != nil && deflate.accepted
	c.compressOut = c.rd.deflate && deflate.fullWindow && h.opts.CompressMinSize > 0
	if c.rd.deflate {
		c.inflated = newInflateBudget(h.mono(now), &h.opts.Limits, h.opts.MaxPayloadLength)
	}
	if h.poller != nil && c.raw != nil {
		// The first burst handles what came with the upgrade, then hands
		// the socket to the poller.
		c.rd.polled = true
		c.reading.Store(true)
		go c.burst(false)
	} else {
		go c.readLoop()
	}
	return true
}

// reserveSlots takes a connection slot, and a pending one, if the limits
// allow; false means the upgrade must be refused.
func (h *WebSocketServerHelper) reserveSlots() bool {
	lim := &h.opts.Limits
	if n := h.open.Add(1); lim.MaxConnections > 0 && n > int64(lim.MaxConnections) {
		h.open.Add(-1)
		return false
	}
	if n := h.pending.Add(1); lim.MaxPendingConnections > 0 && n > int64(lim.MaxPendingConnections) {
		h.pending.Add(-1)
		h.open.Add(-1)
		return false
	}
	return true
}

// releaseSlots gives back the slots of a connection that was never
// registered.
func (h *WebSocketServerHelper) releaseSlots() {
	h.pending.Add(-1)
	h.open.Add(-1)
}

// disconnect is the end of every connection: indexes, timers, callback.
func (h *WebSocketServerHelper) disconnect(c *client) {
	// The state swap races finishAuthentication's compare-and-swap to
	// authenticated; exactly one of them gives back the pending slot.
	wasConnected := c.state.Swap(stDisconnected) == stAuthenticated
	if wasConnected {
		h.stats.authenticated.Add(-1)
	} else {
		h.pending.Add(-1)
	}
	h.open.Add(-1)
	c.mu.Lock()
	if c.authTimer != nil {
		c.authTimer.Stop()
		c.authTimer = nil
	}
	c.req = nil
	info := c.info
	c.mu.Unlock()
	rooms := h.reg.remove(c)
	c.endContext()
	end := ClientInfo{ClientID: c.id, UserID: info.userID, Metadata: info.metadata, CloseCode: int(ws.StatusAbnormalClosure),
		Connected: wasConnected}
	if h.handlers.ClientDisconnected != nil {
		slices.Sort(rooms)
		end.Rooms = rooms
	}
	idle := false
	if n := c.closed.Load(); n != nil {
		end.CloseCode, end.CloseReason, end.ClosedBy, idle = int(n.code), n.reason, n.by, n.idle
	}
	h.stats.closes.add(end.ClosedBy, end.CloseCode, idle)
	h.log.Debug("client disconnected", zapClient(c.id), zap.String("userId", info.userID),
		zap.Int("code", end.CloseCode), zap.String("reason", end.CloseReason), zap.String("by", end.ClosedBy))
	if cb := h.handlers.ClientDisconnected; cb != nil {
		// After the connected callback, if it is still running (the client
		// left at once): a presence add made there must not land after
		// the remove made here (found in a chat trial: 155 of 200 users
		// online for good). Its context has just ended.
		c.mu.Lock()
		hook := c.hookPending
		c.mu.Unlock()
		if hook != nil {
			h.awaitConnectedCallback(c, hook)
		}
		if h.reg.log != nil {
			// So for a rooms-changed call under way (the server's changes,
			// told off the read side); and the rooms are those the app
			// was told of: a change logged but not told (the client left
			// first) is undone from them.
			end.Rooms = h.reg.log.close(c, end.Rooms, func(idle <-chan struct{}) {
				h.awaitCallback(c, idle, "client-disconnected handler waiting: a rooms-changed handler of the client's is still running, "+
					"though its context ended when the client left; it must return for the disconnect handler to run")
			})
			slices.Sort(end.Rooms)
		}
		h.inDisconnect.Add(1)
		err := safeCall(func() error {
			return cb(context.Background(), end)
		})
		h.inDisconnect.Add(-1)
		if err != nil {
			h.stats.handlerErrors.Add(1)
			h.log.Error("client-disconnected handler failed", zapClient(c.id), zap.Error(err))
		}
	} else if h.reg.log != nil {
		h.reg.log.close(c, nil, nil) // nothing to wait for: no disconnect callback
	}
}

// connectedCallbackWarnAfter is how long a disconnect callback waits for
// the client's connected callback before a warning says why it has not
// run (a variable for tests).
var connectedCallbackWarnAfter = 10 * time.Second

// awaitConnectedCallback waits for c's connected callback to return,
// warning when it keeps the disconnect callback waiting long: one that
// ignores its context would otherwise hold it, and what the app does
// there (presence, counts), for good without a word.
func (h *WebSocketServerHelper) awaitConnectedCallback(c *client, hook <-chan struct{}) {
	h.awaitCallback(c, hook, "client-disconnected handler waiting: the client's connected handler is still running, "+
		"though its context ended when the client left; it must return for the disconnect handler to run")
}

// awaitCallback waits for done, the end of a callback of c's that the
// disconnect callback must follow, with warning in the log if that takes
// longer than connectedCallbackWarnAfter.
func (h *WebSocketServerHelper) awaitCallback(c *client, done <-chan struct{}, warning string) {
	select {
	case <-done:
		return
	default:
	}
	t := time.NewTimer(connectedCallbackWarnAfter)
	defer t.Stop()
	select {
	case <-done:
		return
	case <-t.C:
	}
	if ok, held := h.hookLog.Allow(); ok {
		h.log.Warn(warning, zapClient(c.id), zap.Duration("waited", connectedCallbackWarnAfter), zap.Uint64("suppressed", held))
	}
	<-done
}

// Shutdown closes every connection with 1001 "Server shutting down", waits
// for their disconnect callbacks, stops the heartbeat and closes the broker.
// Connections still open shortly before ctx's deadline are cut (when
// 100 ms or a fifth of the time is left, whichever is less, but 20 ms at
// least: their read loops get that long to end), and the error says what
// outlasted ctx:
// connections, read loops held in a callback, other callbacks. Messages a
// client sent that were not handled yet when its connection closed (one
// queued behind a slow message handler, say) are dropped.
func (h *WebSocketServerHelper) Shutdown(ctx context.Context) error {
	var err error
	h.stopOnce.Do(func() { err = h.shutdown(ctx) })
	return err
}

// closeSpread closes clients 1001, all at once or spread over
// Options.ShutdownSpread (at most half of what ctx leaves), oldest first.
func (h *WebSocketServerHelper) closeSpread(ctx context.Context, clients []*client) {
	spread := h.opts.ShutdownSpread
	if d, ok := ctx.Deadline(); ok {
		spread = min(spread, time.Until(d)/2)
	}
	if spread <= 0 || len(clients) < 2 {
		for _, c := range clients {
			c.closeWith(ws.StatusGoingAway, protocol.ReasonShuttingDown)
		}
		return
	}
	slices.SortFunc(clients, func(a, b *client) int { return cmp.Compare(a.connectedAt, b.connectedAt) })
	const tick = 10 * time.Millisecond
	start := time.Now()
	for i, c := range clients {
		// Client i goes at start + spread·i/n: a batch every tick.
		if due := start.Add(spread * time.Duration(i) / time.Duration(len(clients))); time.Until(due) >= tick {
			select {
			case <-time.After(time.Until(due)):
			case <-ctx.Done():
			}
		}
		c.closeWith(ws.StatusGoingAway, protocol.ReasonShuttingDown)
	}
}

// shutdownGrace is how long Shutdown gives read loops to end once their
// connections are cut (less when ctx leaves less).
const shutdownGrace = 100 * time.Millisecond

func (h *WebSocketServerHelper) shutdown(ctx context.Context) error {
	h.acceptMu.Lock()
	h.closing.Store(true)
	h.acceptMu.Unlock()
	h.log.Info("websocket server shutting down", zap.Int("clients", h.reg.len()))
	all := getRecipients()
	*all = h.reg.appendAll(*all)
	h.closeSpread(ctx, *all) // the clients left meanwhile still join and subscribe
	putRecipients(all)
	if h.cancel != nil {
		h.cancel() // heartbeat and subscription changes stop
	}

	var errs []error
	// Connections get until a grace period before ctx's deadline; what is
	// still open then is cut, and the read loops get the grace to end, so
	// that all of it fits in ctx and the caller hears why.
	grace := shutdownGrace
	connsCtx, cancelConns := ctx, context.CancelFunc(func() {})
	if d, ok := ctx.Deadline(); ok {
		grace = max(min(grace, time.Until(d)/5), shutdownGraceFloor)
		connsCtx, cancelConns = context.WithDeadline(ctx, d.Add(-grace))
	}
	defer cancelConns()
	if err := waitGroup(connsCtx, &h.conns); err != nil {
		// Cut what did not close in time; the read loops then end at once.
		all := getRecipients()
		*all = h.reg.appendAll(*all)
		for _, c := range *all {
			c.terminate()
		}
		putRecipients(all)
		if n := h.inDisconnect.Load(); n > 0 {
			errs = append(errs, fmt.Errorf("websocket: shutdown: callbacks still running, %d of them disconnect callbacks: %w", n, err))
		} else {
			errs = append(errs, fmt.Errorf("websocket: shutdown: connections did not close in time: %w", err))
		}
		// A read loop stuck in a callback that ignores its context cannot
		// be stopped; give the others the grace, then stop waiting.
		graceCtx, cancel := context.WithTimeout(context.Background(), grace)
		if waitGroup(graceCtx, &h.conns) != nil {
			errs = append(errs, errors.New("websocket: shutdown: callbacks still running on some read loops"))
		}
		cancel()
	}
	h.acceptMu.Lock()
	h.tasksWaited = true // no task is added from now on (goTaskUntilTasksWaited)
	h.acceptMu.Unlock()
	if err := waitGroup(ctx, &h.tasks); err != nil {
		if n := h.inDisconnect.Load(); n > 0 {
			errs = append(errs, fmt.Errorf("websocket: shutdown: callbacks still running, %d of them disconnect callbacks: %w", n, err))
		} else {
			errs = append(errs, fmt.Errorf("websocket: shutdown: callbacks still running: %w", err))
		}
	}
	if h.poller != nil {
		h.poller.close()
		h.bursts.close(ctx)
	}
	if h.started.Load() {
		h.flush.close()
	}
	h.loops.Wait()
	if err := h.broker.Close(); err != nil {
		errs = append(errs, fmt.Errorf("websocket: shutdown: close broker: %w", err))
	}
	h.log.Info("websocket server stopped")
	return errors.Join(errs...)
}

func waitGroup(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	// A ctx that had already ended would win over a group already at
	// zero: give the group a moment to say so.
	t := time.NewTimer(waitGroupFloor)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
		return ctx.Err()
	}
}

// waitGroupFloor is how long waitGroup still waits once ctx has ended;
// shutdownGraceFloor, the least grace Shutdown gives read loops it cut,
// even when ctx has run out (fx gives the last stop hooks what the others
// left, which may be nothing).
const (
	waitGroupFloor     = 5 * time.Millisecond
	shutdownGraceFloor = 20 * time.Millisecond
)

// goTask runs f off the read loop, tracked for shutdown.
func (h *WebSocketServerHelper) goTask(f func()) {
	h.tasks.Add(1)
	go func() {
		defer h.tasks.Done()
		f()
	}()
}

// goTaskUntilTasksWaited is goTask unless Shutdown has begun waiting for
// the tasks (false), which it does once the connections are closed: a
// task that serves a client still open while Shutdown spreads its closes
// (Options.ShutdownSpread) is started, and none is added to the tasks
// Shutdown waits for as it waits: under acceptMu, which Shutdown takes
// to set tasksWaited.
func (h *WebSocketServerHelper) goTaskUntilTasksWaited(f func()) bool {
	h.acceptMu.Lock()
	defer h.acceptMu.Unlock()
	if h.tasksWaited {
		return false
	}
	h.goTask(f)
	return true
}

// safeCall runs a user callback, turning a panic into an error that
// carries the panic's stack.
func safeCall(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &panicError{value: r, stack: debug.Stack()}
		}
	}()
	return f()
}

// panicError is a callback's recovered panic. Its message is the panic's
// value; formatted with %+v, which zap does for an error's errorVerbose
// field, it adds the stack where the panic happened, which the log of a
// production server needs to find it.
type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string { return fmt.Sprintf("panic: %v", e.value) }

func (e *panicError) Format(f fmt.State, verb rune) {
	_, _ = io.WriteString(f, e.Error())
	if verb == 'v' && f.Flag('+') {
		_, _ = io.WriteString(f, "\n")
		_, _ = f.Write(e.stack)
	}
}

func zapClient(id string) zap.Field { return zap.String("clientId", id) }
func zapErr(err error) zap.Field    { return zap.Error(err) }

const (
	closeBackpressure  = ws.StatusCode(protocol.CloseBackpressure)
	reasonBackpressure = protocol.ReasonBackpressure
)

// mono is t on the rate limits' clock: nanoseconds since epoch, read from
// the monotonic clock. The limits keep time as a point ahead (the message
// limiter) or a debt with its date (the inflate budget), so a wall clock
// stepped back (an NTP correction, a resumed VM) would close every active
// client for going over its rate, or empty its budget.
func (h *WebSocketServerHelper) mono(t time.Time) int64 { return int64(t.Sub(h.epoch)) }

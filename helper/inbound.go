package helper

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"runtime"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/fxws/websocket/protocol"
	"github.com/gobwas/ws"
	"go.uber.org/zap"
)

// inboundMessage keeps every field raw so that wrong types are detected
// rather than silently zeroed.
type inboundMessage struct {
	Event json.RawMessage `json:"event"`
	Data  json.RawMessage `json:"data"`
	ID    json.RawMessage `json:"id"`
}

// admitMessage charges a complete message to c's rate budget, before
// anything else is done with it (inflating, validating, decoding): a flood
// costs the server a counter. Over the budget, c gets the error event and
// is closed, and the message is dropped. arrived is the message's arrival
// on the limits' clock (see mono).
func (h *WebSocketServerHelper) admitMessage(c *client, arrived int64) bool {
	if c.rate.allow(arrived, &h.opts.Limits, &c.forgiven) {
		return true
	}
	h.overRate(c, "client over its message rate; closing")
	return false
}

// overRate ends a client that went over one of its rate budgets: the
// error event, then the close.
func (h *WebSocketServerHelper) overRate(c *client, why string) {
	h.stats.rateLimited.Add(1)
	h.log.Info(why, zapClient(c.id), zap.String("userId", c.identity().userID), zap.String("remoteAddr", c.remoteAddr))
	h.sendError(c, errTextRateLimited)
	c.closeWith(closeRateLimited, reasonRateLimited)
}

// handleMessage is the protocol's inbound dispatch, run on the client's read
// loop once admitMessage let the message in: messages of one client are
// handled in order.
func (h *WebSocketServerHelper) handleMessage(c *client, raw []byte) {
	lim := &h.opts.Limits
	// Limits first, before any decoding: a bracket bomb costs the server a
	// byte scan.
	if lim.depthExceeded(raw) {
		h.log.Debug("message nested too deep", zapClient(c.id))
		h.sendError(c, protocol.ErrTextInvalidFormat)
		return
	}
	c.pauseAfterScan(len(raw))
	trimmed := bytes.TrimLeft(raw, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		// The original parses with JSON.parse: invalid JSON answers with an
		// error, valid non-objects have no event and are ignored. It crashes
		// on `null`; we answer it like invalid input.
		if !json.Valid(raw) || bytes.Equal(bytes.TrimSpace(trimmed), []byte("null")) {
			h.sendError(c, protocol.ErrTextInvalidFormat)
			return
		}
		h.log.Debug("message without event ignored", zapClient(c.id))
		return
	}
	var m inboundMessage
	err := protocol.ObjectMembers(raw, func(key []byte, value json.RawMessage) {
		switch string(key) {
		case "event":
			m.Event = value
		case "data":
			m.Data = value
		case "id":
			m.ID = value
		}
	})
	if err != nil {
		h.sendError(c, protocol.ErrTextInvalidFormat)
		return
	}
	c.pauseAfterScan(len(raw))
	event, ok := protocol.StringValue(m.Event)
	if !ok || event == "" {
		h.log.Debug("message without a string event ignored", zapClient(c.id))
		return
	}
	switch event {
	case protocol.EventHeartbeat:
		return
	case protocol.EventAuthenticate:
		h.handleAuthenticate(c, bytes.Clone(m.Data))
		return
	}
	if !c.authenticated() {
		h.sendError(c, protocol.ErrTextNotAuthenticated)
		return
	}
	// Application code runs from here on (or is waited for): what was
	// held for this burst goes out first, and the sweeps look at the
	// socket instead of the client's clocks until it returns (see
	// client.appSince).
	c.uncork()
	began := time.Now()
	since := began.UnixNano()
	c.appSince.Store(since)
	defer func() {
		end := time.Now()
		c.appDone.Store(end.UnixNano())
		for !c.appSince.CompareAndSwap(since, 0) {
			runtime.Gosched() // a sweep is looking at the unread input (droppedInCall)
		}
		c.forgiven = c.forgivenAfterCall(end.Sub(began), &h.opts.Limits)
	}()
	if !c.awaitConnectedCallback() {
		return
	}
	if event != protocol.EventJoin && event != protocol.EventLeave {
		// raw is the read buffer, reused for the next frame; data goes to
		// handlers that may keep it. Join and leave only read it, here: a
		// join naming thousands of rooms is not copied.
		m.Data = bytes.Clone(m.Data)
	}
	sealed := false
	if event == protocol.EventEncrypted && c.info.encrypted() && h.handlers.InboundTransformer != nil {
		var ok bool
		if event, m, ok = h.transformInbound(c, m); !ok {
			return
		}
		sealed = true
	}
	switch event {
	case protocol.EventJoin:
		h.handleJoin(c, m.Data)
	case protocol.EventLeave:
		h.handleLeave(c, m.Data)
	case protocol.EventConnected, protocol.EventDisconnect, protocol.EventError,
		protocol.EventHeartbeat, protocol.EventAuthenticate:
		// Server-to-client events; a client sending them is ignored. The
		// other two reach here only from inside an encrypted message.
	default:
		cb := h.handlers.Message
		if cb == nil {
			return
		}
		msg := protocol.Message{Event: event, Data: m.Data}
		msg.ID, _ = protocol.StringValue(m.ID)
		info := c.identity()
		err := safeCall(func() error {
			return cb(c.context(), MessageRequest{ClientID: c.id, UserID: info.userID, Metadata: info.metadata, Message: msg, Encrypted: sealed})
		})
		if err != nil {
			h.stats.handlerErrors.Add(1)
			h.log.Error("message handler failed", zapClient(c.id), zap.String("event", event), zap.Error(err))
		}
	}
}

// transformInbound runs the inbound transformer on an `encrypted` event and
// returns the message it stands for; false drops it.
func (h *WebSocketServerHelper) transformInbound(c *client, m inboundMessage) (string, inboundMessage, bool) {
	msg := protocol.Message{Event: protocol.EventEncrypted, Data: m.Data}
	msg.ID, _ = protocol.StringValue(m.ID)
	var out protocol.Message
	err := safeCall(func() error {
		var err error
		out, err = h.handlers.InboundTransformer(c.context(), InboundRequest{ClientID: c.id, UserID: c.info.userID, Message: msg})
		return err
	})
	if err != nil {
		h.stats.unopened.Add(1)
		// A client decides what it sends: one sending junk by the
		// thousand would otherwise write the log as fast.
		if ok, n := h.transformLog.Allow(); ok {
			h.log.Warn("inbound transformer failed; message dropped", zapClient(c.id), zap.Error(err), zap.Uint64("suppressed", n))
		}
		return "", m, false
	}
	if out.Event == "" || out.Event == protocol.EventEncrypted {
		h.log.Debug("transformed message without a usable event ignored", zapClient(c.id))
		return "", m, false
	}
	// What came out of the transformer was sealed when the frame's checks
	// ran: the checks a plain message passes apply to it now, or a client
	// could get past them by encrypting.
	if !utf8.ValidString(out.Event) || !utf8.ValidString(out.ID) ||
		(len(out.Data) > 0 && (!utf8.Valid(out.Data) || h.opts.Limits.depthExceeded(out.Data) || !json.Valid(out.Data))) {
		h.log.Debug("transformed message refused: not valid UTF-8 JSON or nested too deep", zapClient(c.id))
		h.sendError(c, protocol.ErrTextInvalidFormat)
		return "", m, false
	}
	m = inboundMessage{Data: out.Data}
	if out.ID != "" {
		m.ID, _ = json.Marshal(out.ID)
	}
	return out.Event, m, true
}

// eachRoom calls f with each string member of `{"rooms": [...]}`, in
// order, until f returns false. The names are read one at a time, so a join
// naming thousands of rooms costs no more than the names a server takes.
// Wrong shapes yield nothing; the original would throw on some of them.
func eachRoom(data json.RawMessage, f func(room string) bool) {
	if len(data) == 0 || data[0] != '{' {
		return
	}
	var rooms json.RawMessage
	err := protocol.ObjectMembers(data, func(key []byte, value json.RawMessage) {
		if string(key) == "rooms" {
			rooms = value // of duplicate keys the last wins, as with JSON.parse
		}
	})
	if err != nil || len(rooms) == 0 || rooms[0] != '[' {
		return
	}
	_ = protocol.ArrayElements(rooms, func(v json.RawMessage) bool {
		if s, ok := protocol.StringValue(v); ok {
			return f(s)
		}
		return true
	})
}

func (h *WebSocketServerHelper) handleJoin(c *client, data json.RawMessage) {
	perJoin := h.opts.Limits.MaxRoomsPerJoin
	var rooms []string
	var seen map[string]struct{}
	eachRoom(data, func(r string) bool {
		if !protocol.ValidRoomName(r) {
			return true
		}
		if _, dup := seen[r]; dup {
			return true
		}
		if r != c.id && !h.opts.AllowClientIDRooms && protocol.IsClientID(r) {
			if ok, n := h.clientIDRoomLog.Allow(); ok {
				h.log.Info("join of a room named like a client id refused (see Options.AllowClientIDRooms)",
					zapClient(c.id), zap.String("room", r), zap.Uint64("suppressed", n))
			}
			return true
		}
		if perJoin > 0 && len(rooms) == perJoin {
			// A name that would have been taken: said to the client, which
			// would otherwise take the rooms past the cap for refused by
			// the app (a market-data trial asked for 500 symbols in one
			// join and got 256 silently).
			h.log.Debug("join truncated to MaxRoomsPerJoin", zapClient(c.id), zap.Int("limit", perJoin))
			h.sendError(c, protocol.ErrTextJoinTooLarge)
			return false
		}
		if seen == nil {
			seen = make(map[string]struct{}, 4)
		}
		seen[r] = struct{}{}
		rooms = append(rooms, r)
		return true
	})
	if len(rooms) == 0 {
		h.log.Debug("join rejected: no valid room names", zapClient(c.id))
		return
	}
	if h.roomsFull(c) {
		// Rooms it is already in are no refusal (a client sending its
		// joins again after a hiccup).
		if slices.ContainsFunc(rooms, func(r string) bool { return !h.reg.in(c, r) }) {
			h.log.Debug("join rejected: client at MaxRoomsPerClient", zapClient(c.id))
			h.sendError(c, protocol.ErrTextRoomLimit)
		}
		return
	}
	cb := h.handlers.ValidateRoom
	if cb == nil {
		h.log.Debug("join rejected: no validate-room handler", zapClient(c.id))
		return
	}
	info := c.identity()
	began := h.mono(time.Now())
	var allowed []string
	err := safeCall(func() error {
		var err error
		allowed, err = cb(c.context(), ValidateRoomRequest{ClientID: c.id, UserID: info.userID, Metadata: info.metadata, Rooms: rooms})
		return err
	})
	if err != nil {
		h.stats.handlerErrors.Add(1)
		h.log.Error("validate-room handler failed", zapClient(c.id), zap.Error(err))
		return
	}
	pc := newPacer()
	var joined []string
	defer func() {
		// A removal of the user from one of these rooms, ordered while the
		// room check ran and found the client not in it yet, applies now
		// (fences): by the last order about the room, so a re-invite
		// stands, and a room this join did not ask for is not touched.
		if h.fences.active() {
			_, removed := h.fences.roomsSince(info.userID, began)
			for _, r := range removed {
				if slices.Contains(allowed, r) && h.reg.unjoin(c, r) {
					joined = slices.DeleteFunc(joined, func(j string) bool { return j == r })
				}
			}
		}
		h.roomsChanged(c, joined, nil)
	}()
	for _, r := range allowed {
		if !protocol.ValidRoomName(r) {
			continue
		}
		if r != c.id && !h.opts.AllowClientIDRooms && protocol.IsClientID(r) {
			// The handler's answer is held to the rule the request was:
			// one that normalises names (case, spaces) could otherwise
			// turn an asked-for name into another client's id room.
			if ok, n := h.clientIDRoomLog.Allow(); ok {
				h.log.Info("validate-room answered a room named like another client's id; not joined (see Options.AllowClientIDRooms)",
					zapClient(c.id), zap.String("room", r), zap.Uint64("suppressed", n))
			}
			continue
		}
		if h.roomsFull(c) && !h.reg.in(c, r) {
			h.log.Debug("join stopped at MaxRoomsPerClient", zapClient(c.id), zap.String("room", r))
			h.sendError(c, protocol.ErrTextRoomLimit)
			return
		}
		if _, added := h.reg.joinBy(c, r, false); added && h.handlers.RoomsChanged != nil {
			joined = append(joined, r)
		}
		if pc.due() {
			h.pause()
		}
	}
}

// roomsChanged tells the app what a client's own join or leave changed,
// on the client's read side. With Options.RoomsChangedByServer the
// changes were logged as they were made (joined and left are not used):
// what is logged up to the client's last own change is told, the
// server's changes before it included (see roomLogs).
func (h *WebSocketServerHelper) roomsChanged(c *client, joined, left []string) {
	if h.reg.log != nil {
		if h.reg.log.tellOwn(c, func(run roomRun) bool { return h.tellRooms(c, run, true) }, func(idle <-chan struct{}) { <-idle }) {
			h.startRoomsTeller(c)
		}
		return
	}
	if h.handlers.RoomsChanged == nil {
		return
	}
	if len(joined) > 0 {
		h.tellRooms(c, roomRun{rooms: joined}, false)
	}
	if len(left) > 0 {
		h.tellRooms(c, roomRun{rooms: left, leave: true}, false)
	}
}

// startRoomsTeller starts a goroutine that tells the server's changes
// logged for c (see roomLogs), unless Shutdown is waiting for its tasks:
// the clients are all closed then, and what was not told is left out of
// their disconnect callbacks' rooms. Not unless Shutdown has begun: with
// Options.ShutdownSpread the clients not closed yet are served as before
// for up to half the stop's time (their server changes were held back,
// then undone from their disconnect callbacks' rooms; found in review).
func (h *WebSocketServerHelper) startRoomsTeller(c *client) {
	if !h.goTaskUntilTasksWaited(func() { h.tellServerRooms(c) }) {
		h.reg.log.release(c)
	}
}

// tellServerRooms tells the server's changes logged for c, one run at a
// time, until the log is told or reaches a change of the client's own
// (its read side tells those), once the connected callback has returned;
// it stops when the client's context ends.
func (h *WebSocketServerHelper) tellServerRooms(c *client) {
	for {
		c.awaitConnectedCallback()
		if c.contextEnded() || !c.authenticated() {
			h.reg.log.release(c) // leaving: disconnect undoes what is left
			return
		}
		run, ok := h.reg.log.nextServer(c)
		if !ok {
			return
		}
		if !h.tellRooms(c, run, true) {
			h.reg.log.putBack(c, run)
			return
		}
	}
}

// tellRooms calls the rooms-changed callback for one run of changes.
// For rooms joined, it waits first until the broker listens on their
// channels (or SubscribeTimeout has passed): the rooms new to this
// instance are subscribed in the background, and a room's state read by
// the handler and a message sent to the room from another instance
// meanwhile would miss each other (found in an encrypted-chat trial: 17
// of 20 lost). untilEnd: nothing is called once the client's context has
// ended (false).
func (h *WebSocketServerHelper) tellRooms(c *client, run roomRun, untilEnd bool) bool {
	if !run.leave && !h.subs.upToDate() {
		parent := context.Background()
		if untilEnd {
			// Not past the client's end: the call will not be made
			// then, and the disconnect callback waits for this one
			// (found in review: a stalled broker held it
			// SubscribeTimeout).
			parent = c.context()
		}
		ctx, cancel := context.WithTimeout(parent, h.opts.SubscribeTimeout)
		if err := h.subs.sync(ctx); err != nil && c.context().Err() == nil {
			if ok, n := h.subscribeLog.Allow(); ok {
				h.log.Warn("broker did not confirm a join's subscriptions in time; the rooms-changed handler runs anyway",
					zapClient(c.id), zap.Error(err), zap.Uint64("suppressed", n))
			}
		}
		cancel()
	}
	if untilEnd && c.contextEnded() {
		return false
	}
	info := c.identity()
	req := RoomsChangedRequest{ClientID: c.id, UserID: info.userID, Metadata: info.metadata, ByServer: run.server}
	if run.leave {
		req.Left = run.rooms
	} else {
		req.Joined = run.rooms
	}
	err := safeCall(func() error { return h.handlers.RoomsChanged(c.context(), req) })
	if err != nil {
		h.stats.handlerErrors.Add(1)
		h.log.Error("rooms-changed handler failed", zapClient(c.id), zap.Bool("byServer", run.server), zap.Error(err))
	}
	return true
}

// roomsFull reports whether c is in as many rooms as a client may join
// itself (Limits.MaxRoomsPerClient; server-side JoinRoom is not capped).
func (h *WebSocketServerHelper) roomsFull(c *client) bool {
	max := h.opts.Limits.MaxRoomsPerClient
	return max > 0 && h.reg.roomCount(c) >= max
}

func (h *WebSocketServerHelper) handleLeave(c *client, data json.RawMessage) {
	pc := newPacer()
	// Capped like the rooms a client may join by itself: a leave of tens
	// of thousands of names would take the registry's lock for each.
	budget := h.opts.Limits.MaxRoomsPerClient
	var left []string
	eachRoom(data, func(r string) bool {
		if h.reg.leaveBy(c, r, false, false) && h.handlers.RoomsChanged != nil && !slices.Contains(left, r) {
			left = append(left, r)
		}
		if pc.due() {
			h.pause()
		}
		budget-- // negative (no cap) never reaches 0
		return budget != 0
	})
	h.roomsChanged(c, nil, left)
}

// handleAuthenticate starts authentication. The callbacks run on their own
// goroutine: a slow authenticator delays nobody, and the client's later
// messages are answered meanwhile (with "Not authenticated").
func (h *WebSocketServerHelper) handleAuthenticate(c *client, data json.RawMessage) {
	if !c.state.CompareAndSwap(stUnauthorized, stAuthenticating) {
		h.sendError(c, protocol.ErrTextAlreadyAuthenticated)
		return
	}
	c.mu.Lock()
	if c.authTimer != nil {
		c.authTimer.Stop()
	}
	c.authTimer = time.AfterFunc(protocol.AuthInProgressFactor*h.opts.AuthTimeout,
		func() { h.authTimedOut(c, stAuthenticating) })
	req := c.req
	c.mu.Unlock()
	if len(data) == 0 || string(data) == "null" {
		data = json.RawMessage("{}")
	}
	began := h.mono(time.Now())
	h.goTask(func() { h.authenticate(c, data, req, began) })
}

func (h *WebSocketServerHelper) authTimedOut(c *client, expected int32) {
	if c.state.Load() == expected {
		h.log.Info("authentication timeout", zapClient(c.id))
		c.closeWith(ws.StatusCode(protocol.CloseAuthTimeout), protocol.ReasonAuthTimeout)
	}
}

func (h *WebSocketServerHelper) authenticate(c *client, data json.RawMessage, req *http.Request, began int64) {
	ctx := c.context()
	var res *AuthResult
	err := safeCall(func() error {
		var err error
		res, err = h.handlers.Authenticate(ctx, AuthenticateRequest{ClientID: c.id, Data: data, RemoteAddr: c.remoteAddr, Request: req})
		return err
	})
	if ctx.Err() != nil {
		return // gone meanwhile: nothing more happens
	}
	switch {
	case err != nil:
		h.stats.authErrors.Add(1)
		h.log.Warn("authentication error", zapClient(c.id), zap.String("remoteAddr", c.remoteAddr), zap.Error(err))
		h.rejectAuth(c, protocol.ErrTextAuthError)
		return
	case res == nil:
		h.stats.authRejected.Add(1)
		h.log.Info("authentication rejected", zapClient(c.id), zap.String("remoteAddr", c.remoteAddr))
		h.rejectAuth(c, protocol.ErrTextAuthFailed)
		return
	}
	info := identity{userID: res.UserID, metadata: res.Metadata}

	if h.opts.RequireEncryption {
		hs := h.handlers.Handshake
		if hs == nil { // New refuses this; kept for safety
			c.closeWith(ws.StatusCode(protocol.CloseEncryptionRequired), protocol.ReasonEncryptionRequired)
			return
		}
		var hr *HandshakeResult
		err := safeCall(func() error {
			var err error
			hr, err = hs(ctx, HandshakeRequest{ClientID: c.id, UserID: info.userID, Data: data})
			return err
		})
		if ctx.Err() != nil {
			return
		}
		if err != nil || hr == nil {
			h.log.Info("encryption handshake failed", zapClient(c.id), zap.Error(err))
			h.sendError(c, protocol.ErrTextHandshakeFailed)
			c.closeWith(ws.StatusCode(protocol.CloseEncryptionRequired), protocol.ReasonEncryptionRequired)
			return
		}
		info.keys = &handshakeKeys{serverPublicKey: hr.ServerPublicKey, salt: hr.Salt}
	}
	h.finishAuthentication(c, info, res.Rooms, began)
}

func (h *WebSocketServerHelper) rejectAuth(c *client, text string) {
	h.sendError(c, text)
	c.closeWith(ws.StatusCode(protocol.CloseAuthFailed), protocol.ReasonAuthFailed)
}

// finishAuthentication indexes the client, puts it in its rooms (its own,
// the default ones and those of its AuthResult), waits until the broker
// listens for it, sends `connected` and runs the connected callback.
// began is when authentication began, on the mono clock: a close or a
// room removal ordered for the user since then, which missed this
// connection as it was not bound to the user yet, applies now (fences).
func (h *WebSocketServerHelper) finishAuthentication(c *client, info identity, rooms []string, began int64) {
	c.mu.Lock()
	c.info = info
	c.req = nil
	if c.authTimer != nil {
		c.authTimer.Stop()
		c.authTimer = nil
	}
	c.mu.Unlock()
	if !h.reg.bind(c, info.userID) {
		return
	}
	h.reg.join(c, c.id)
	for _, r := range h.opts.DefaultRooms {
		h.reg.join(c, r)
	}
	for _, r := range rooms {
		h.reg.join(c, r) // as JoinRoom: internal names are refused there
	}
	if h.fences.active() {
		// What was ordered for the user while this connection authenticated
		// missed it, as it was not bound to the user yet (see fences).
		if code, reason, ok := h.fences.closedSince(info.userID, began, c.id); ok {
			h.log.Info("user disconnected while this connection authenticated; closing it too", zapClient(c.id), zap.String("userId", info.userID), zap.Int("code", int(code)))
			c.closeWith(code, reason) // the check before `connected` below sees it
		}
		// A new connection was in no room but its own before: whatever it
		// is in now that the last order removed, this authentication (or
		// an order since) put it there.
		toAdd, removed := h.fences.roomsSince(info.userID, began)
		for _, r := range removed {
			h.reg.leave(c, r, false)
		}
		for _, r := range toAdd {
			if !h.roomsFull(c) {
				h.reg.join(c, r)
			}
		}
	}
	// Not derived from the client's context: that would make its done
	// channel, which most connections never need, for every one of them.
	// A client that leaves meanwhile costs a wait of at most
	// SubscribeTimeout on this goroutine.
	if !h.subs.upToDate() {
		ctx, cancel := context.WithTimeout(context.Background(), h.opts.SubscribeTimeout)
		if err := h.subs.sync(ctx); err != nil && c.context().Err() == nil {
			// Once a second: a crowd logging in during a stalled broker
			// would log a line each (found in review).
			if ok, n := h.subscribeLog.Allow(); ok {
				h.log.Warn("broker did not confirm subscriptions in time; cross-instance delivery to this client may lag",
					zapClient(c.id), zap.Error(err), zap.Uint64("suppressed", n))
			}
		}
		cancel()
	}

	cd := protocol.ConnectedData{
		ID:     c.id,
		UserID: info.userID,
		Time:   time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
	}
	if info.encrypted() {
		cd.ServerPublicKey, cd.Salt = info.publicKeys()
	}
	payload, _ := json.Marshal(cd)
	frame := messageFrame(protocol.EventConnected, payload)

	// Become visible to deliveries and queue `connected` under the outbound
	// lock: a delivery that sees the client authenticated waits for that
	// lock, so `connected` is always the first thing an authenticated
	// client receives. The heartbeat clock restarts now: slow
	// authentication is not silence.
	c.lastActivity.Store(time.Now().UnixNano())
	cb := h.handlers.ClientConnected
	logRooms := h.reg.log != nil
	if cb != nil || logRooms {
		// With the rooms-changed log, also without a connected callback:
		// the teller of the server's changes waits for it (`connected`
		// first).
		c.mu.Lock()
		c.hookPending = make(chan struct{})
		c.mu.Unlock()
		defer func() {
			c.mu.Lock()
			close(c.hookPending)
			c.hookPending = nil
			c.mu.Unlock()
		}()
	}
	var snapshot []string
	if logRooms {
		// A change of the client's rooms from now on is told to the
		// rooms-changed callback, once the connected callback has
		// returned; one before it is in the connected callback's rooms.
		// Taken before the client becomes authenticated: its own first
		// join may come right after.
		snapshot = h.reg.roomsOfLogged(c)
	}
	c.out.mu.Lock()
	if c.out.closing || c.out.readerDone || !c.state.CompareAndSwap(stAuthenticating, stAuthenticated) {
		c.out.mu.Unlock()
		return // disconnected meanwhile; disconnect undoes the indexes
	}
	h.stats.authenticated.Add(1)
	h.pending.Add(-1) // no longer pending; disconnect will not count it again
	c.enqueueLocked(frame)
	c.out.mu.Unlock()
	h.log.Debug("client authenticated", zapClient(c.id), zap.String("userId", info.userID),
		zap.Bool("encrypted", info.encrypted()))

	if cb != nil {
		if !logRooms {
			snapshot = h.reg.roomsOf(c)
		}
		err := safeCall(func() error {
			return cb(c.context(), ClientInfo{ClientID: c.id, UserID: info.userID, Metadata: info.metadata, Rooms: snapshot})
		})
		if err != nil {
			h.stats.handlerErrors.Add(1)
			h.log.Error("client-connected handler failed", zapClient(c.id), zap.Error(err))
		}
	}
}

package helper

import (
	"context"
	"slices"
	"time"

	"github.com/fxws/websocket/protocol"
	"github.com/gobwas/ws"
	"go.uber.org/zap"
)

// heartbeat runs the two clocks of liveness in one goroutine (no timer per
// connection): the application heartbeat sweep, which closes authenticated
// clients that sent no message for HeartbeatTimeout (4002), and the
// transport's idle check, which pings quiet sockets and cuts those silent
// for IdleTimeout. A pong counts for the idle check, not for the heartbeat.
// While the app's code has one of a client's messages, and nothing is read
// from the client, the sweeps go by what the kernel says of its socket
// (busyLooks).
func (h *WebSocketServerHelper) heartbeat(ctx context.Context) {
	busy := busyLooks{}
	sweep := time.NewTicker(h.opts.HeartbeatInterval)
	defer sweep.Stop()
	idleEvery := max(h.opts.IdleTimeout/4, 10*time.Millisecond)
	idle := time.NewTicker(idleEvery)
	defer idle.Stop()
	standstills := time.NewTicker(standstillSweep)
	defer standstills.Stop()
	// MaxConnectionAge is checked by the idle sweep, or by a sweep of its
	// own every twentieth of the age when that is sooner: a trial's 45 s
	// age closed at 59 s behind the default 15 s idle sweep.
	var ages <-chan time.Time
	if every := max(h.opts.MaxConnectionAge/20, 10*time.Millisecond); h.opts.MaxConnectionAge > 0 && every < idleEvery {
		t := time.NewTicker(every)
		defer t.Stop()
		ages = t.C
	}
	beats, idles := newSweepClock(h.opts.HeartbeatInterval), newSweepClock(idleEvery)
	for {
		select {
		case <-ctx.Done():
			return
		case <-standstills.C:
			now := time.Now()
			h.sweepStandstills(now)
			h.fences.expire(h.mono(now))
			h.orders.expire(h.mono(now))
		case <-sweep.C:
			now := time.Now()
			h.sweepHeartbeats(now, busy, beats.spare(now))
		case <-ages:
			h.sweepAges(time.Now())
		case <-idle.C:
			now := time.Now()
			h.sweepIdle(now, busy, idles.spare(now))
			if h.bursts != nil {
				h.bursts.trim()
			}
		}
	}
}

// sweepClock tells a sweep that comes late: the process (or this
// goroutine) stood still, a VM paused, a machine starved, and every
// client's clock stopped with it, their input waiting unread. Such a sweep
// spares the clients it would close, once: by the next the readers have
// caught up. An IoT trial saw 1060 of 6000 devices that heartbeated on
// time closed 1001 after a 20 s stall. Never two sweeps in a row, so that
// a server too loaded to keep time still closes the silent.
type sweepClock struct {
	every  time.Duration
	last   time.Time
	spared bool
}

func newSweepClock(every time.Duration) sweepClock {
	return sweepClock{every: every, last: time.Now()}
}

// spare reports whether the sweep at now spares its clients.
func (s *sweepClock) spare(now time.Time) bool {
	late := now.Sub(s.last) > 2*s.every+time.Second
	s.last = now
	s.spared = late && !s.spared
	return s.spared
}

func (h *WebSocketServerHelper) sweepHeartbeats(now time.Time, busy busyLooks, spare bool) {
	busy.prune()
	deadline := now.Add(-h.opts.HeartbeatTimeout).UnixNano()
	all := getRecipients()
	defer putRecipients(all)
	*all = h.reg.appendAll(*all)
	for _, c := range *all {
		heard, gone := busy.heard(c, now.UnixNano())
		if gone {
			c.terminate()
			continue
		}
		// Logged once: a client that does not answer the close is still
		// here at the next sweeps, until the close grace runs out.
		if c.authenticated() && max(c.lastActivity.Load(), heard) < deadline && !spare && !c.unreadInput() &&
			c.closeWith(ws.StatusCode(protocol.CloseHeartbeatTimeout), protocol.ReasonHeartbeatTimeout) {
			h.log.Info("heartbeat timeout", zapClient(c.id), zap.String("userId", c.identity().userID), zap.String("remoteAddr", c.remoteAddr))
		}
	}
}

// unreadInput reports whether c's socket holds input the server has not
// read yet, outside a standstill (busyLooks covers those): the client spoke
// and the server is behind (its readers starved), not the client silent.
// A reader that keeps up leaves nothing unread for long, so a silent client
// is still closed, at the sweep after its bytes are read, if they were not
// a message. It is asked only of clients about to be closed.
func (c *client) unreadInput() bool {
	if c.appSince.Load() != 0 {
		return false
	}
	n, ok := c.socket().unread()
	return ok && n > 0
}

// standstillSweep is how often, and after how long, the clients whose
// message the app has are looked at for a dropped connection.
const standstillSweep = time.Second

// sweepStandstills lets go of the clients that dropped their connection
// while the app's code had one of their messages (a device out of range, a
// killed process): nothing is read from them meanwhile, so the read side
// would learn of it only once the call returned, and the call's context
// would not end. A client that closed in order is left to finish: its
// close frame is still unread (droppedInCall).
func (h *WebSocketServerHelper) sweepStandstills(now time.Time) {
	all := getRecipients()
	defer putRecipients(all)
	*all = h.reg.appendAll(*all)
	for _, c := range *all {
		since := c.appSince.Load()
		if since <= 0 || now.UnixNano()-since < int64(standstillSweep) {
			continue
		}
		if _, closed, ok := c.raw.peer(); ok && closed && c.droppedInCall(since) {
			h.log.Debug("connection dropped during a call; letting it go", zapClient(c.id))
			c.terminate()
		}
	}
}

// droppedInCall reports, of a client whose message the app has had since
// `since` and whose peer has closed its side (a FIN or a reset), whether
// it dropped the connection rather than closing it in order: a client
// that closes in order sends a close frame first, and since nothing is
// read during the call, that frame is still among the unread input, in
// the read buffer or the kernel's (which a reset leaves readable). The
// read side waits for the look to end before it touches its buffer again
// (appSince is claimed meanwhile). Unread input past what is looked at,
// or a socket that cannot be asked, counts as an orderly close: the call
// then ends as it would have.
func (c *client) droppedInCall(since int64) bool {
	if !c.appSince.CompareAndSwap(since, -since) {
		return false // the call has returned: the read side finds the close itself
	}
	defer c.appSince.Store(since)
	unread := append(slices.Clone(c.rd.buffered()), c.rd.pending...)
	peeked := make([]byte, 64<<10)
	n, ok := c.raw.peekInput(peeked)
	if !ok || n == len(peeked) {
		return false
	}
	return !hasCloseFrame(append(unread, peeked[:n]...))
}

// hasCloseFrame reports whether the client frames in b, from a frame
// boundary on, include a close frame.
func hasCloseFrame(b []byte) bool {
	for len(b) > 0 {
		h, n, err := parseHeader(b)
		if err != nil {
			return false // cut short, or not frames at all
		}
		if h.op == ws.OpClose {
			return true
		}
		if h.length > int64(len(b)-n) {
			return false
		}
		b = b[n+int(h.length):]
	}
	return false
}

func (h *WebSocketServerHelper) sweepIdle(now time.Time, busy busyLooks, spare bool) {
	cut := now.Add(-h.opts.IdleTimeout).UnixNano()
	ping := now.Add(-h.opts.IdleTimeout / 2).UnixNano()
	all := getRecipients()
	defer putRecipients(all)
	*all = h.reg.appendAll(*all)
	for _, c := range *all {
		heard, gone := busy.heard(c, now.UnixNano())
		if gone {
			c.terminate()
			continue
		}
		if h.agedOut(c, now) {
			continue
		}
		seen := max(c.lastSeen.Load(), heard)
		switch {
		case seen < cut && !spare && !c.unreadInput():
			if c.closeNoting(ws.StatusGoingAway, protocol.ReasonIdleTimeout, true) {
				h.log.Info("idle timeout", zapClient(c.id), zap.String("userId", c.identity().userID), zap.String("remoteAddr", c.remoteAddr))
			}
		case seen < ping && !h.opts.DisablePings:
			c.sendControl(pingFrame)
		}
	}
}

// agedOut closes c if it has reached its MaxConnectionAge, and reports
// whether it has.
func (h *WebSocketServerHelper) agedOut(c *client, now time.Time) bool {
	if h.opts.MaxConnectionAge <= 0 || !c.authenticated() || now.UnixNano()-c.connectedAt < int64(ageLimit(c.id, h.opts.MaxConnectionAge)) {
		return false
	}
	if c.closeWith(ws.StatusGoingAway, protocol.ReasonMaxConnectionAge) {
		h.stats.agedOut.Add(1)
		h.log.Debug("max connection age", zapClient(c.id))
	}
	return true
}

// sweepAges closes the clients that reached their MaxConnectionAge, between
// idle sweeps.
func (h *WebSocketServerHelper) sweepAges(now time.Time) {
	all := getRecipients()
	defer putRecipients(all)
	*all = h.reg.appendAll(*all)
	for _, c := range *all {
		h.agedOut(c, now)
	}
}

// busyLooks keeps, for each client whose message the app has, what the
// sweeps last saw of its socket; it belongs to the heartbeat goroutine,
// and holds only clients in a standstill (a few at a time), so that no
// connection carries these fields for the rare time it needs them.
type busyLooks map[*client]*busyLook

type busyLook struct {
	since    int64  // the standstill's start (client.appSince)
	heard    int64  // when the bytes received last grew
	received uint64 // the bytes received from the peer at the last look
}

// prune forgets the clients whose messages the app has given back: one
// that then left is visited by no sweep again.
func (b busyLooks) prune() {
	for c := range b {
		if c.appSince.Load() == 0 {
			delete(b, c)
		}
	}
}

// heard is, for the sweeps, the last time c was heard from that its
// clocks do not show: while the app's code has one of its messages,
// nothing is read from it, so the kernel's count of the bytes received
// from it stands in (a faithful client heartbeats on, and the count
// grows); a peer that has closed its side without a close frame is gone
// (droppedInCall), one that closed in order is let finish. Over TLS the
// socket under it is asked for the count, but its input cannot be read
// for a close frame, so a closed peer is left to the timeouts. Where no
// socket can be asked, the clocks count from when the app took the
// message. Otherwise it is when the app last gave a message back, so
// that the clocks restart then and the frames the client sent meanwhile
// can be read first.
func (b busyLooks) heard(c *client, now int64) (heard int64, gone bool) {
	since := c.appSince.Load()
	if since == 0 {
		return c.appDone.Load(), false // a look left over goes at the next prune
	}
	received, closed, ok := c.socket().peer()
	switch {
	case !ok:
		return since, false
	case closed && c.raw != nil && c.droppedInCall(since):
		// Over TLS the bytes received tell that the client is there, but
		// its unread input cannot be read for a close frame: a drop there
		// waits for the timeouts.
		delete(b, c)
		return 0, true
	}
	l := b[c]
	switch {
	case l == nil || l.since != since: // a new standstill: its first look
		b[c] = &busyLook{since: since, heard: since, received: received}
		return since, false
	case received != l.received:
		l.heard, l.received = now, received
	}
	return l.heard, false
}

// ageLimit is the age at which the connection id is closed, MaxConnectionAge
// less up to a tenth of it, by a hash of the id: the connections of one
// burst (a fleet back after a restart) leave spread over that tenth, not
// in one sweep.
func ageLimit(id string, maxAge time.Duration) time.Duration {
	h := uint32(2166136261) // FNV-1a
	for i := 0; i < len(id); i++ {
		h = (h ^ uint32(id[i])) * 16777619
	}
	return maxAge - time.Duration(float64(maxAge/10)*float64(h%1024)/1023)
}

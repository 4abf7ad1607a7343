package helper

import (
	"context"
	"time"

	"github.com/fxws/websocket/protocol"
	"github.com/gobwas/ws"
)

// heartbeat runs the two clocks of liveness in one goroutine (no timer per
// connection): the application heartbeat sweep, which closes authenticated
// clients that sent no message for HeartbeatTimeout (4002), and the
// transport's idle check, which pings quiet sockets and cuts those silent
// for IdleTimeout. A pong counts for the idle check, not for the heartbeat.
// Both clocks stand still while the app's code has one of the client's
// messages (client.inApp).
func (h *WebSocketServerHelper) heartbeat(ctx context.Context) {
	sweep := time.NewTicker(h.opts.HeartbeatInterval)
	defer sweep.Stop()
	idleEvery := max(h.opts.IdleTimeout/4, 10*time.Millisecond)
	idle := time.NewTicker(idleEvery)
	defer idle.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sweep.C:
			h.sweepHeartbeats(time.Now())
		case <-idle.C:
			h.sweepIdle(time.Now())
			if h.bursts != nil {
				h.bursts.trim()
			}
		}
	}
}

func (h *WebSocketServerHelper) sweepHeartbeats(now time.Time) {
	deadline := now.Add(-h.opts.HeartbeatTimeout).UnixNano()
	all := getRecipients()
	defer putRecipients(all)
	*all = h.reg.appendAll(*all)
	for _, c := range *all {
		app := c.inApp.Load()
		if app < 0 {
			continue // its clock stands still while the app has its message
		}
		if c.authenticated() && max(c.lastActivity.Load(), app) < deadline {
			h.log.Info("heartbeat timeout", zapClient(c.id))
			c.closeWith(ws.StatusCode(protocol.CloseHeartbeatTimeout), protocol.ReasonHeartbeatTimeout)
		}
	}
}

func (h *WebSocketServerHelper) sweepIdle(now time.Time) {
	cut := now.Add(-h.opts.IdleTimeout).UnixNano()
	ping := now.Add(-h.opts.IdleTimeout / 2).UnixNano()
	all := getRecipients()
	defer putRecipients(all)
	*all = h.reg.appendAll(*all)
	for _, c := range *all {
		app := c.inApp.Load()
		if app < 0 {
			continue // as in sweepHeartbeats
		}
		seen := max(c.lastSeen.Load(), app)
		switch {
		case seen < cut:
			h.log.Debug("idle timeout", zapClient(c.id))
			c.closeWith(ws.StatusGoingAway, protocol.ReasonIdleTimeout)
		case seen < ping && !h.opts.DisablePings:
			c.sendControl(pingFrame)
		}
	}
}

package helper

import (
	"fmt"
	"time"
)

// Limits protect the server from clients that send too much. The original
// has none of them; every default is generous enough for any well-behaved
// client and is documented with its field. A negative value turns a limit
// off.
type Limits struct {
	// MaxJSONDepth is the deepest nesting of arrays and objects accepted in
	// an inbound message; deeper ones get "Invalid message format".
	// Default 64.
	MaxJSONDepth int
	// MaxRoomsPerJoin caps the room names one `join` may ask for; the
	// excess names are ignored. Default 256.
	MaxRoomsPerJoin int
	// MaxRoomsPerClient caps the rooms one client may be in, its own-id
	// and default rooms included; joins past it are ignored. Server-side
	// JoinRoom is not capped. Default 1024.
	MaxRoomsPerClient int
	// MessagesPerSecond and MessageBurst rate-limit each client's inbound
	// messages (a token bucket refilled at MessagesPerSecond, holding
	// MessageBurst). A client over the limit gets an error event "Rate limit
	// exceeded" and is closed with 1008. Defaults 1000 and 2000.
	MessagesPerSecond float64
	MessageBurst      int
	// MaxConnections caps this instance's open connections; upgrades past
	// it get HTTP 503. Default: no cap (the process's file limit is one).
	MaxConnections int
	// MaxPendingConnections caps connections that have not authenticated
	// yet, so a flood of idle sockets cannot crowd out real clients;
	// upgrades past it get HTTP 503. Default 10000.
	MaxPendingConnections int
}

func (l Limits) validate() error {
	if l.MessageBurst < 0 && l.MessagesPerSecond > 0 {
		return fmt.Errorf("Limits.MessageBurst must be positive when MessagesPerSecond is set")
	}
	return nil
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.MaxJSONDepth, 64)
	def(&l.MaxRoomsPerJoin, 256)
	def(&l.MaxRoomsPerClient, 1024)
	def(&l.MaxPendingConnections, 10000)
	if l.MessagesPerSecond == 0 {
		l.MessagesPerSecond = 1000
	}
	def(&l.MessageBurst, 2000)
	return l
}

// rateLimiter is a GCRA token bucket: one int64 per client, no timer, no
// lock (only the client's read loop uses it).
type rateLimiter struct {
	tat int64 // theoretical arrival time, unix nanos
}

// allow reports whether one more message fits at now.
func (r *rateLimiter) allow(now int64, l *Limits) bool {
	if l.MessagesPerSecond <= 0 {
		return true
	}
	interval := int64(float64(time.Second) / l.MessagesPerSecond)
	tolerance := interval * int64(l.MessageBurst-1)
	tat := max(r.tat, now)
	if tat-now > tolerance {
		return false
	}
	r.tat = tat + interval
	return true
}

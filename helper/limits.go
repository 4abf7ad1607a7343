package helper

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fxws/websocket/protocol"
)

// Limits protect the server from clients that send too much. The original
// has none of them; every default is generous enough for any well-behaved
// client and is documented with its field. A negative value turns a limit
// off; for the two token buckets that is a negative rate (MessagesPerSecond,
// InflatedBytesPerSecond), and a negative burst while the rate is on fails
// Validate. A negative MaxUnauthenticatedPayload leaves MaxPayloadLength
// alone to apply.
type Limits struct {
	// MaxJSONDepth is the deepest nesting of arrays and objects accepted in
	// an inbound message; deeper ones get "Invalid message format".
	// Default 64.
	MaxJSONDepth int
	// MaxRoomsPerJoin caps the room names one `join` may ask for; the
	// excess names are ignored, and the client gets the error event
	// protocol.ErrTextJoinTooLarge. Default 256.
	MaxRoomsPerJoin int
	// MaxRoomsPerClient caps the rooms one client may be in, its own-id
	// and default rooms included; joins past it are ignored, and the
	// client gets the error event protocol.ErrTextRoomLimit. Server-side
	// JoinRoom is not capped. A `leave` is read up to as many names, the
	// rest ignored, so that a leave of tens of thousands does not cost a
	// registry lock for each. Default 1024.
	MaxRoomsPerClient int
	// MessagesPerSecond and MessageBurst rate-limit each client's inbound
	// messages (a token bucket refilled at MessagesPerSecond, holding
	// MessageBurst). Every frame counts: pings and pongs, and each frame
	// of a fragmented message (a message in 64 frames costs 64; clients
	// rarely fragment, browsers never). A client over the limit gets
	// an error event "Rate limit exceeded" and is closed with 1008. While
	// the app's code holds one of a client's messages nothing is read from
	// it; the frames that waited meanwhile then pass uncharged, as many as
	// the rate allowed during the call (on TLS, where the server cannot
	// see what waits, or when more than 16 KiB waits, one call's worth
	// however many calls in a row), so a
	// slow call does not make a steady client look like a flood. Defaults
	// 1000 and 2000.
	MessagesPerSecond float64
	MessageBurst      int
	// MaxConnections caps this instance's open connections; upgrades past
	// it get HTTP 503 (counted in Stats.RefusedAtLimit). Default: the
	// process's open-file limit less 256, so that a crowd cannot take the
	// descriptors the rest of the process needs (its Redis pool, its other
	// listeners, the accept that answers 503); no cap where that limit is
	// unknown or under 1024. Negative: no cap.
	MaxConnections int
	// MaxPendingConnections caps connections that have not authenticated
	// yet, so a flood of idle sockets cannot crowd out real clients;
	// upgrades past it get HTTP 503. Default 10000.
	MaxPendingConnections int
	// MaxUnauthenticatedPayload caps a message, inflated when it came
	// compressed, from a client that has not authenticated yet: before
	// `connected` only `authenticate` and `heartbeat` are of any use, and
	// they are small. Past it the client is closed with 1009 "Received too
	// big message", as past MaxPayloadLength. It bounds what an anonymous
	// client can make the server read, scan and, with PerMessageDeflate,
	// inflate: a compressed message of a few hundred bytes can stand for
	// the whole MaxPayloadLength. A message sent before `connected` has
	// arrived counts as sent before authenticating. Default 16 KiB (a
	// token of several KiB fits); never more than MaxPayloadLength.
	MaxUnauthenticatedPayload int
	// InflatedBytesPerSecond and InflatedBurst budget what each client's
	// compressed messages (with PerMessageDeflate) may inflate to: a token
	// bucket of bytes, refilled at InflatedBytesPerSecond and holding
	// InflatedBurst. Inflating is the one cost a client can make the
	// server pay far beyond what it sends: a message of a few hundred
	// bytes stands for the whole MaxPayloadLength, so MessagesPerSecond
	// alone would let one client have 128 MB a second inflated from
	// about 400 KB. A message is inflated no further than the budget
	// left; one that needs more gets the error event "Rate limit
	// exceeded" and closes the client with 1008, as the message rate
	// does. Plain messages are not charged: their size is what the
	// client itself had to send. A new connection starts with four
	// MaxPayloadLength of budget (512 KiB by default; at most
	// InflatedBurst) and fills up to InflatedBurst at the rate, so that a
	// client closed for going over it gets a few messages' worth, not a
	// burst, each time it reconnects. Defaults 1 MiB a second
	// and 1 MiB; InflatedBurst is never less than MaxPayloadLength, so
	// that one message of the largest size always fits.
	InflatedBytesPerSecond float64
	InflatedBurst          int
}

// What a client hears when it sends faster than its limit allows: the error
// event, then the close (1008, policy violation: the standard code for a
// client that broke the server's rules; the original has no rate limit).
const (
	errTextRateLimited = protocol.ErrTextRateLimited
	reasonRateLimited  = protocol.ReasonRateLimited
	closeRateLimited   = protocol.ClosePolicyViolation
)

func (l Limits) validate() error {
	var errs []error
	if math.IsNaN(l.MessagesPerSecond) || math.IsInf(l.MessagesPerSecond, 0) {
		errs = append(errs, fmt.Errorf("Limits.MessagesPerSecond must be a finite number, got %v", l.MessagesPerSecond))
	}
	if l.MessageBurst < 0 && l.MessagesPerSecond >= 0 {
		errs = append(errs, fmt.Errorf("Limits.MessageBurst must not be negative while the rate limit is on, got %d", l.MessageBurst))
	}
	if math.IsNaN(l.InflatedBytesPerSecond) || math.IsInf(l.InflatedBytesPerSecond, 0) {
		errs = append(errs, fmt.Errorf("Limits.InflatedBytesPerSecond must be a finite number, got %v", l.InflatedBytesPerSecond))
	}
	if l.InflatedBurst < 0 && l.InflatedBytesPerSecond >= 0 {
		errs = append(errs, fmt.Errorf("Limits.InflatedBurst must not be negative while the inflate budget is on, got %d", l.InflatedBurst))
	}
	return errors.Join(errs...)
}

// fileHeadroom is what the default MaxConnections leaves of the open-file
// limit for the rest of the process.
const fileHeadroom = 256

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
	if l.MaxConnections == 0 {
		if n := openFileLimit(); n >= 1024 {
			l.MaxConnections = n - fileHeadroom
		}
	}
	def(&l.MaxUnauthenticatedPayload, 16<<10)
	if l.MessagesPerSecond == 0 {
		l.MessagesPerSecond = 1000
	}
	def(&l.MessageBurst, 2000)
	if l.InflatedBytesPerSecond == 0 {
		l.InflatedBytesPerSecond = 1 << 20
	}
	def(&l.InflatedBurst, 1<<20)
	return l
}

// depthExceeded reports whether raw nests deeper than the limit. A valid
// document of depth d has at least 2d bytes, so short messages, the usual
// ones, skip the scan.
func (l *Limits) depthExceeded(raw []byte) bool {
	return l.MaxJSONDepth > 0 && len(raw) > 2*l.MaxJSONDepth && protocol.JSONDepthExceeds(raw, l.MaxJSONDepth)
}

// originPattern is one parsed AllowedOrigins entry.
type originPattern struct {
	any    bool   // "*"
	scheme string // "" matches every scheme
	host   string // host[:port], lower case; without the "*." of a wildcard
	suffix bool   // host is a domain whose subdomains match
}

func parseOriginPattern(p string) (originPattern, error) {
	bad := func(why string) (originPattern, error) {
		return originPattern{}, fmt.Errorf("AllowedOrigins: %q %s", p, why)
	}
	s := strings.ToLower(strings.TrimSpace(p))
	if s == "*" {
		return originPattern{any: true}, nil
	}
	var op originPattern
	if i := strings.Index(s, "://"); i >= 0 {
		op.scheme, s = s[:i], s[i+3:]
		if op.scheme == "" {
			return bad("has an empty scheme")
		}
	}
	if strings.HasPrefix(s, "*.") {
		op.suffix, s = true, s[2:]
	}
	if s == "" || strings.ContainsAny(s, "*/?# ") {
		return bad("is not scheme://host[:port], scheme://*.domain or *")
	}
	// What a browser's Origin can never hold: a scheme of other
	// characters, user info, a port that is not one.
	if strings.Trim(op.scheme, "abcdefghijklmnopqrstuvwxyz0123456789+-.") != "" {
		return bad("has a scheme that is not one")
	}
	if strings.ContainsAny(s, "@\\") {
		return bad("has user info, which no Origin carries")
	}
	if i := strings.LastIndexByte(s, ':'); i > strings.LastIndexByte(s, ']') {
		port := s[i+1:]
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '0' || port[0] == '+' {
			return bad("has a port that is not a number from 1 to 65535")
		}
		if i == 0 {
			return bad("has a port but no host")
		}
	}
	op.host = s
	return op, nil
}

// matches reports whether the Origin header value (already lower case)
// fits the pattern.
func (op originPattern) matches(origin string) bool {
	if op.any {
		return true
	}
	scheme, host, ok := strings.Cut(origin, "://")
	if !ok || (op.scheme != "" && scheme != op.scheme) {
		return false
	}
	if !op.suffix {
		return host == op.host
	}
	return len(host) > len(op.host)+1 && strings.HasSuffix(host, op.host) && host[len(host)-len(op.host)-1] == '.'
}

// originChecker builds the upgrade's Origin check from the allowlist; nil
// when there is none.
func originChecker(patterns []string) func(*http.Request) bool {
	if len(patterns) == 0 {
		return nil
	}
	ps := make([]originPattern, 0, len(patterns))
	for _, p := range patterns {
		op, err := parseOriginPattern(p) // Validate has refused bad ones
		if err == nil {
			ps = append(ps, op)
		}
	}
	return func(r *http.Request) bool {
		origin := r.Header.Get("Origin")
		if origin == "" {
			return true // not a browser: nothing to hijack
		}
		origin = strings.ToLower(origin)
		for _, op := range ps {
			if op.matches(origin) {
				return true
			}
		}
		return false
	}
}

// rateLimiter is a GCRA token bucket: one int64 per client, no timer, no
// lock (only the client's read loop uses it).
type rateLimiter struct {
	tat int64 // theoretical arrival time, on the limits' clock (see mono)
}

// inflateBudget is a token bucket over inflated bytes, kept as what was
// owed (the burst minus what was left) at the last spend, and when. Unlike
// the message limiter's clock it needs no conversion of bytes to
// nanoseconds, which at a very low rate would overflow int64.
type inflateBudget struct {
	owed float64 // bytes, at `at`
	at   int64   // on the limits' clock (see mono)
}

// startMessages is how many messages of the largest size a new
// connection's inflate budget holds.
const startMessages = 4

// newInflateBudget is a new connection's budget: it holds startMessages
// messages of the largest size (at most the burst), and fills up to the
// burst at the budget's rate. A client that reconnects as soon as it is
// closed for going over its budget thus gets a few messages' worth, not a
// whole burst; and an editor's user who pastes a few large chunks right
// after connecting is not closed for it (with one message's worth, a
// collaborative-editing trial's third paste of 100 KB was).
func newInflateBudget(now int64, l *Limits, maxPayload int) inflateBudget {
	start := min(l.InflatedBurst, startMessages*maxPayload)
	if l.InflatedBytesPerSecond <= 0 || l.InflatedBurst <= start {
		return inflateBudget{}
	}
	return inflateBudget{owed: float64(l.InflatedBurst - start), at: now}
}

// owedAt is what is still owed at now, after refilling.
func (b *inflateBudget) owedAt(now int64, l *Limits) float64 {
	// A clock that went back refills nothing (and spend re-anchors).
	refilled := float64(max(now-b.at, 0)) * l.InflatedBytesPerSecond / float64(time.Second)
	return max(b.owed-refilled, 0)
}

// left returns how many bytes may be inflated at now, at most burst; with
// the budget off, no limit.
func (b *inflateBudget) left(now int64, l *Limits) int {
	if l.InflatedBytesPerSecond <= 0 {
		return math.MaxInt
	}
	return max(l.InflatedBurst-int(math.Ceil(b.owedAt(now, l))), 0)
}

// spend charges n inflated bytes at now; with the budget off, nothing.
func (b *inflateBudget) spend(now int64, n int, l *Limits) {
	if l.InflatedBytesPerSecond <= 0 {
		return
	}
	b.owed, b.at = b.owedAt(now, l)+float64(n), now
}

// allow reports whether one more message fits at now.
//
// forgiven counts the frames that waited unread while the app's code held
// one of the client's messages (see forgivenAfterCall), 0 normally: each
// of them passes without a charge. Nothing is read from the client during
// such a call, so what it sent meanwhile is read in one go afterwards;
// charged at the time it is read, a client well under its rate would be
// taken for a flood after any slow call (a database write, a publish
// waiting out a Redis outage).
func (r *rateLimiter) allow(now int64, l *Limits, forgiven *uint32) bool {
	if l.MessagesPerSecond <= 0 {
		return true
	}
	if *forgiven > 0 {
		*forgiven--
		return true
	}
	// Capped (at 36 and 73 years) so that an absurdly low rate or large
	// burst cannot overflow int64 into a negative, always-open limit.
	interval := int64(min(float64(time.Second)/l.MessagesPerSecond, 1<<60))
	tolerance := int64(min(float64(interval)*float64(l.MessageBurst-1), 1<<61))
	if r.tat-now > tolerance+interval {
		// Never further ahead than that after an allowed message, unless
		// the clock went back: start afresh rather than refuse everything
		// until it has caught up. (The helper feeds a monotonic clock; this
		// keeps the limiter sound for any caller.)
		r.tat = now
	}
	tat := max(r.tat, now)
	if tat-now > tolerance {
		return false
	}
	r.tat = tat + interval
	return true
}

// forgivenAfterCall is the number of the client's frames to let through
// uncharged after a call of d on its read side: those that came during it
// and wait, as many as the rate allowed in d, plus what is left of an
// earlier call's. Only frames that are there count (complete ones, in the
// read buffer and the first 16 KiB of the kernel's queue), so nothing is
// saved up for later: a client that keeps a byte, or a message, ahead of
// the server gains a message a call at most. Where the socket cannot be
// asked (TLS), or more than 16 KiB waits (large messages), it is the larger
// of what is left and what the call allowed, not a sum over calls in a row.
func (c *client) forgivenAfterCall(d time.Duration, l *Limits) uint32 {
	if l.MessagesPerSecond <= 0 || d < time.Millisecond {
		return c.forgiven
	}
	buf := peekBuffers.Get().(*[]byte)
	defer peekBuffers.Put(buf)
	unread := append(append((*buf)[:0], c.rd.buffered()...), c.rd.pending...)
	asked := true
	if len(unread) < peekSize {
		var n int
		n, asked = c.raw.peekInput((*buf)[len(unread):peekSize])
		unread = unread[:len(unread)+n]
	}
	return forgivenFor(c.forgiven, d.Seconds()*l.MessagesPerSecond, unread, asked, len(unread) >= peekSize)
}

// forgivenFor is forgivenAfterCall's count: of the frames in unread (all
// the client's input not read yet, if asked), as many as left (an earlier
// call's) and earned (this one's) allow. Not asked (TLS), or more waiting
// than was looked at (full: large messages), the larger of what is left
// and what this call earned, not their sum, so that it cannot be saved
// up; what is left is kept whole, as the frames it counted still wait
// beyond the window (a short call in a backlog of large messages once cut
// it down to the few frames the window holds).
func forgivenFor(left uint32, earned float64, unread []byte, asked, full bool) uint32 {
	earned = min(earned, math.MaxUint32)
	if !asked {
		return max(left, uint32(earned))
	}
	n := uint32(countFrames(unread, int(min(float64(left)+earned, math.MaxUint32))))
	if full {
		n = max(n, left, uint32(earned))
	}
	return n
}

// countFrames counts the complete client frames at the start of b, up to
// limit.
func countFrames(b []byte, limit int) int {
	n := 0
	for n < limit {
		h, hl, err := parseHeader(b)
		if err != nil || h.length > int64(len(b)-hl) {
			break
		}
		b = b[hl+int(h.length):]
		n++
	}
	return n
}

// peekBuffers hold what forgivenAfterCall looks at.
var peekBuffers = sync.Pool{New: func() any { b := make([]byte, peekSize); return &b }}

const peekSize = 16 << 10

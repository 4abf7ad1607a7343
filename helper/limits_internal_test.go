package helper

import (
	"math"
	"testing"
	"time"
)

func TestRateLimiterBurstThenRate(t *testing.T) {
	l := Limits{MessagesPerSecond: 10, MessageBurst: 5}
	var r rateLimiter
	now := time.Unix(1000, 0).UnixNano()
	for i := 0; i < 5; i++ {
		if !r.allow(now, &l, new(uint32)) {
			t.Fatalf("message %d of the burst refused", i)
		}
	}
	if r.allow(now, &l, new(uint32)) {
		t.Fatal("message past the burst allowed")
	}
	// One interval later exactly one more fits.
	now += int64(100 * time.Millisecond)
	if !r.allow(now, &l, new(uint32)) {
		t.Fatal("refill after one interval refused")
	}
	if r.allow(now, &l, new(uint32)) {
		t.Fatal("second message within one interval allowed")
	}
	// A long pause refills the bucket up to the burst, not beyond.
	now += int64(time.Hour)
	n := 0
	for r.allow(now, &l, new(uint32)) {
		n++
	}
	if n != 5 {
		t.Fatalf("after a pause %d messages fit, want the burst of 5", n)
	}
}

// What a client sent while the app's code held one of its messages may
// come in faster than the rate, by as much as it could have sent during
// the call, once (found in a user trial: a client at 30/s under a 50/s
// limit was closed 1008 after a 4 s call); and the credit never adds up
// past the standstill (found in review: a first version let an idle
// client save up its unused rate without bound).
func TestRateLimiterStandstillCredit(t *testing.T) {
	l := Limits{MessagesPerSecond: 50, MessageBurst: 100}
	sec := int64(time.Second)
	var none uint32
	t0 := 1000 * sec
	t1 := t0 + 4*sec

	// The app holds a message for 4 s; at 30/s, 120 came meanwhile.
	var r rateLimiter
	if !r.allow(t0, &l, &none) {
		t.Fatal("first message refused")
	}
	credit := standstillCredit(4 * time.Second)
	for i := range 120 {
		if !r.allow(t1, &l, &credit) {
			t.Fatalf("message %d of the 120 sent at 30/s during the standstill refused", i)
		}
	}
	// A flood right after: never more than 4 s at 50/s plus the burst.
	var f rateLimiter
	f.allow(t0, &l, &none)
	credit = standstillCredit(4 * time.Second)
	n := 0
	for f.allow(t1, &l, &credit) {
		n++
	}
	if n < 299 || n > 301 {
		t.Fatalf("a flood after a 4 s standstill: %d allowed, want about 300 (4 s × 50/s + 100)", n)
	}
	if credit != 0 {
		t.Fatalf("credit %d left once the flood reached the present", credit)
	}
	// Spent once: later, the burst alone.
	n = 0
	for f.allow(t1+3600*sec, &l, &credit) {
		n++
	}
	if n != 100 {
		t.Fatalf("an hour later %d fit at once, want the burst of 100", n)
	}
	// An unspent credit does not grow with time: an hour after a 4 s
	// standstill, still at most 4 s worth past the burst.
	var q rateLimiter
	q.allow(t0, &l, &none)
	credit = standstillCredit(4 * time.Second)
	n = 0
	for q.allow(t1+3600*sec, &l, &credit) {
		n++
	}
	if n < 299 || n > 301 {
		t.Fatalf("an hour after a 4 s standstill %d fit at once, want about 300", n)
	}
	// A fast handler's calls give no credit.
	if c := standstillCredit(300 * time.Microsecond); c != 0 {
		t.Fatalf("a 300 µs call gave a credit of %d ms", c)
	}
}

func TestRateLimiterOff(t *testing.T) {
	l := Limits{MessagesPerSecond: -1}
	var r rateLimiter
	for i := 0; i < 10000; i++ {
		if !r.allow(0, &l, new(uint32)) {
			t.Fatal("disabled limiter refused")
		}
	}
}

func TestInflateBudgetRefill(t *testing.T) {
	l := Limits{InflatedBytesPerSecond: 1000, InflatedBurst: 4000}
	var b inflateBudget
	now := time.Unix(1000, 0).UnixNano()
	if got := b.left(now, &l); got != 4000 {
		t.Fatalf("fresh budget %d, want the burst of 4000", got)
	}
	b.spend(now, 3000, &l)
	if got := b.left(now, &l); got != 1000 {
		t.Fatalf("after spending 3000: %d left, want 1000", got)
	}
	b.spend(now, 1000, &l)
	if got := b.left(now, &l); got != 0 {
		t.Fatalf("spent out: %d left, want 0", got)
	}
	// Half a second refills 500 bytes.
	now += int64(500 * time.Millisecond)
	if got := b.left(now, &l); got != 500 {
		t.Fatalf("half a second later: %d left, want 500", got)
	}
	// A long pause refills up to the burst, not beyond.
	now += int64(time.Hour)
	if got := b.left(now, &l); got != 4000 {
		t.Fatalf("after a pause: %d left, want the burst", got)
	}
}

func TestInflateBudgetStartsWithOneMessage(t *testing.T) {
	l := Limits{InflatedBytesPerSecond: 1000, InflatedBurst: 4000}
	now := time.Unix(1000, 0).UnixNano()
	b := newInflateBudget(now, &l, 1000)
	if got := b.left(now, &l); got != 1000 {
		t.Fatalf("a new connection's budget is %d, want one message of 1000", got)
	}
	// It fills to the burst at the rate: 3 s for the other 3000 bytes.
	if got := b.left(now+int64(1500*time.Millisecond), &l); got != 2500 {
		t.Fatalf("1.5 s later: %d, want 2500", got)
	}
	if got := b.left(now+int64(time.Hour), &l); got != 4000 {
		t.Fatalf("later: %d, want the burst", got)
	}
	// No head start to take back when the burst is one message, or when
	// the budget is off.
	l1 := Limits{InflatedBytesPerSecond: 1000, InflatedBurst: 1000}
	if b := newInflateBudget(now, &l1, 1000); b.left(now, &l1) != 1000 {
		t.Fatal("burst of one message: not full at the start")
	}
	if b := newInflateBudget(now, &Limits{InflatedBytesPerSecond: -1}, 1000); b != (inflateBudget{}) {
		t.Fatal("budget off: not zero")
	}
}

// A rate so low that a message's refill time does not fit in int64 nanos
// must still read as spent, not wrap around to a full budget.
func TestInflateBudgetTinyRate(t *testing.T) {
	l := Limits{InflatedBytesPerSecond: 1e-12, InflatedBurst: 1 << 20}
	now := time.Unix(1000, 0).UnixNano()
	b := newInflateBudget(now, &l, 64<<10)
	if got := b.left(now, &l); got != 64<<10 {
		t.Fatalf("start: %d left, want one message of 64 KiB", got)
	}
	b.spend(now, 64<<10, &l)
	if got := b.left(now+int64(time.Hour), &l); got != 0 {
		t.Fatalf("an hour after spending it: %d left, want nothing", got)
	}
}

// A rate or burst far out of range is capped, not wrapped into a limit
// that lets everything through.
func TestRateLimiterExtremes(t *testing.T) {
	now := time.Unix(1000, 0).UnixNano()
	tiny := Limits{MessagesPerSecond: 1e-12, MessageBurst: 3}
	var r rateLimiter
	for i := 0; i < 3; i++ {
		if !r.allow(now, &tiny, new(uint32)) {
			t.Fatalf("message %d of the burst refused", i)
		}
	}
	if r.allow(now+int64(time.Hour), &tiny, new(uint32)) {
		t.Fatal("a rate of 1e-12/s let a fourth message through within the hour")
	}
	huge := Limits{MessagesPerSecond: 1000, MessageBurst: math.MaxInt}
	var h rateLimiter
	for i := 0; i < 1000; i++ {
		if !h.allow(now, &huge, new(uint32)) {
			t.Fatalf("message %d refused under a burst of MaxInt", i)
		}
	}
}

// A wall clock stepped back (NTP, a resumed VM) must not turn the limits
// against every active client. The helper feeds them a monotonic clock;
// the limits themselves also start afresh when time goes back.
func TestLimitsSurviveABackwardClock(t *testing.T) {
	lim := Options{}.withDefaults().Limits
	t0 := time.Now().UnixNano()
	var r rateLimiter
	if !r.allow(t0, &lim, new(uint32)) {
		t.Fatal("first message refused")
	}
	if !r.allow(t0-int64(3*time.Second), &lim, new(uint32)) {
		t.Error("the second message, after the clock went back 3 s, was refused: the client would be closed 1008")
	}
	b := newInflateBudget(t0, &lim, 128<<10)
	b.spend(t0, 1000, &lim)
	before := b.left(t0, &lim)
	if left := b.left(t0-int64(time.Second), &lim); left != before {
		t.Errorf("inflate budget after the clock went back 1 s: %d bytes left, %d before", left, before)
	}
	b.spend(t0-int64(time.Second), 1000, &lim)
	if left := b.left(t0, &lim); left < before-1000 {
		t.Errorf("inflate budget a second after re-anchoring: %d bytes left, want at least %d", left, before-1000)
	}
}

// A backlog read over several calls keeps the credit of all of them: a
// long call, then 2 ms for each message that came meanwhile; or a second
// long call inside the first one's backlog (both found in review: a first
// version let each call replace the credit with its own). A call after
// which nothing is unread leaves nothing to save up.
func TestStandstillCreditAcrossABacklog(t *testing.T) {
	l := Limits{MessagesPerSecond: 20, MessageBurst: 10}
	ms := int64(time.Millisecond)
	t0 := int64(1000 * time.Second)

	var c client
	c.rd.pending = []byte{0x81} // what came during the calls, unread
	c.rate.allow(t0, &l, &c.rateCredit)
	c.rateCredit = c.creditAfterCall(1500)
	now := t0 + 1500*ms
	for i := range 22 { // 1.5 s at 15/s
		if !c.rate.allow(now, &l, &c.rateCredit) {
			t.Fatalf("backlog message %d of 22 refused (credit %d ms)", i, c.rateCredit)
		}
		now += 2 * ms
		c.rateCredit = c.creditAfterCall(2)
	}

	var b client
	b.rd.pending = []byte{0x81}
	b.rate.allow(t0, &l, &b.rateCredit)
	b.rateCredit = b.creditAfterCall(1500)
	t1 := t0 + 1500*ms
	if !b.rate.allow(t1, &l, &b.rateCredit) {
		t.Fatal("second long call's message refused")
	}
	b.rateCredit = b.creditAfterCall(1500)
	for i := range 43 { // 3 s at 15/s, over two back-to-back calls
		if !b.rate.allow(t1+1500*ms, &l, &b.rateCredit) {
			t.Fatalf("message %d of 43 sent during two back-to-back 1.5 s calls refused", i)
		}
	}

	// Nothing unread after each call (a socket that cannot be asked, so
	// the larger credit stays): 2 ms calls give no more than 2 ms.
	var q client
	for range 1000 {
		q.rateCredit = q.creditAfterCall(2)
	}
	if q.rateCredit != 2 {
		t.Fatalf("a steady client's 2 ms calls saved up %d ms of credit", q.rateCredit)
	}
}

package helper

import (
	"strconv"
	"testing"
	"time"
)

// Each order is applied once, whichever copy comes first, and its id is
// forgotten once it is older than keep, so that ids do not pile up.
func TestUserOrdersApplyOnce(t *testing.T) {
	o := userOrders{keep: 100}
	applied := 0
	apply := func() { applied++ }
	o.once("a", 0, apply)
	o.once("a", 50, apply)
	if applied != 1 {
		t.Fatalf("applied %d times, want once", applied)
	}
	o.once("b", 60, apply)
	if applied != 2 {
		t.Fatalf("a second order: applied %d in all, want 2", applied)
	}
	for i := range 1000 {
		o.once(strconv.Itoa(i), 200+int64(i), apply)
	}
	if n := o.remembered(); n > 101 {
		t.Fatalf("%d ids remembered, want at most those of the last 100 ticks", n)
	}
	o.once("late", 10_000, apply)
	if n := o.remembered(); n != 1 {
		t.Fatalf("%d ids remembered after a quiet spell, want 1", n)
	}
	// With no further order, the heartbeat's expire lets them go.
	o.expire(10_050)
	if n := o.remembered(); n != 1 {
		t.Fatalf("%d ids remembered within keep, want 1", n)
	}
	o.expire(10_101)
	if n := o.remembered(); n != 0 || o.fifo != nil {
		t.Fatalf("%d ids remembered after keep with no further order, want 0", n)
	}
}

// A steady stream of orders (a worker adding a crowd to a channel through
// the emitter: 10 000 a second, every instance hearing each on the
// broadcast channel) holds keep's worth of ids, 160 000 with the default
// AuthTimeout; each order then forgets the oldest one or two. Forgetting
// them must not cost a move of all the others: it made every order cost
// megabytes of copying on the broker's worker, under the lock, and the
// instance fell behind the stream (its queue then drops what it is sent).
func TestUserOrdersKeepUpWithASteadyStream(t *testing.T) {
	const rate = 10_000 // orders a second
	step := int64(time.Second) / rate
	o := userOrders{keep: fenceFor(5 * time.Second)}
	apply := func() {}
	i := int64(0)
	for ; i*step <= o.keep; i++ { // the first keep's worth: nothing to forget
		o.once(strconv.FormatInt(i, 10), i*step, apply)
	}
	// Two seconds of the stream must take less than two seconds.
	start := time.Now()
	n := 0
	for ; n < 2*rate && time.Since(start) < 4*time.Second; n++ {
		o.once(strconv.FormatInt(i, 10), i*step, apply)
		i++
	}
	if took := time.Since(start); n < 2*rate || took > 2*time.Second {
		t.Fatalf("%d orders of a %d/s stream (2 s of it) took %v with %d ids held: the instance cannot keep up",
			n, rate, took.Round(time.Millisecond), o.remembered())
	}
}

package helper

import (
	"strconv"
	"testing"
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

package helper_test

import (
	"context"
	"testing"
	"time"

	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/protocol"
)

// MaxConnectionAge closes an authenticated connection once it is that old
// (less up to a tenth), 1001 "Max connection age", so that a fleet evens
// out behind a load balancer after a rolling restart (an IoT trial's ask:
// the devices of a restarted instance stayed on the others for good).
// An unauthenticated one is the auth timeout's.
func TestMaxConnectionAge(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, func(c *helper.Config) {
			c.Options.MaxConnectionAge = 400 * time.Millisecond
			c.Options.IdleTimeout = 400 * time.Millisecond // sweeps every 100 ms
		})
		expectAgedOut(t, k)
		eventually(t, "the close counted", func() bool {
			st := k.h.Stats()
			return st.AgedOut == 1 && st.ServerCloses[protocol.CloseGoingAway] == 1 && st.IdleTimeouts == 0
		})
	})
}

// The age is checked every twentieth of it when the idle sweep (a quarter
// of IdleTimeout) comes less often: a trial's 45 s age closed at 59 s.
// Here the idle sweep runs every 15 minutes.
func TestMaxConnectionAgeIsCheckedMoreOftenThanTheIdleSweep(t *testing.T) {
	k := newKit(t, rawSocket, func(c *helper.Config) {
		c.Options.MaxConnectionAge = 400 * time.Millisecond
	})
	expectAgedOut(t, k)
	eventually(t, "the close counted", func() bool { return k.h.Stats().AgedOut == 1 })
}

func TestMaxConnectionAgeMustNotBeNegative(t *testing.T) {
	if err := (helper.Options{MaxConnectionAge: -time.Second}).Validate(); err == nil {
		t.Fatal("a negative MaxConnectionAge was accepted")
	}
}

// expectAgedOut logs a client in on k, whose MaxConnectionAge is 400 ms,
// and waits for its close, no sooner than that age less a tenth.
func expectAgedOut(t *testing.T, k *kit) {
	t.Helper()
	began := time.Now()
	c, _ := k.login("alice")
	code, reason, err := c.ExpectClose(context.Background())
	if err != nil || code != protocol.CloseGoingAway || reason != protocol.ReasonMaxConnectionAge {
		t.Fatalf("close %d %q %v, want 1001 %q", code, reason, err, protocol.ReasonMaxConnectionAge)
	}
	if age := time.Since(began); age < 360*time.Millisecond {
		t.Fatalf("closed after %v, before its age of 400 ms less a tenth", age)
	}
}

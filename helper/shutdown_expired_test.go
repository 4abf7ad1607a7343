package helper_test

import (
	"context"
	"strings"
	"testing"
	"time"
)

// A stop context that has run out, as fx gives the last hooks when earlier
// ones used the time, must not make Shutdown report stuck callbacks on a
// server where none runs: the read loops it cuts still get a short grace,
// and a wait on a group already at zero is not lost to the expired
// context (found in review).
func TestExpiredStopContextInventsNoStuckCallbacks(t *testing.T) {
	k := newKit(t, rawSocket, nil)
	k.login("idle") // connected, nothing in the app
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Millisecond))
	defer cancel()
	err := k.h.Shutdown(ctx)
	t.Logf("Shutdown: %v", err)
	if err != nil && strings.Contains(err.Error(), "callbacks still running") {
		t.Fatalf("Shutdown with no callback running reports %q", err)
	}
}

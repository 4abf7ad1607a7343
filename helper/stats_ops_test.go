package helper_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
)

// What an on-call needs from Stats (asked for in an operations trial):
// refused authentications told from a failing auth backend, upgrades
// refused at a limit or for their origin, and whether the broker reaches
// the other instances.
func TestStatsForOperations(t *testing.T) {
	k := newKit(t, rawSocket, func(c *helper.Config) {
		c.Options.Limits.MaxConnections = 2
		c.Options.AllowedOrigins = []string{"https://app.example.com"}
	})
	ctx := context.Background()
	if !k.h.Stats().BrokerConnected {
		t.Fatal("BrokerConnected false on a started helper with the in-process broker")
	}
	bad := k.dial()
	if _, err := bad.Authenticate(ctx, map[string]any{"token": "nope"}); err == nil {
		t.Fatal("a bad token authenticated")
	}
	_, _, _ = bad.ExpectClose(ctx)
	broken := k.dial()
	if _, err := broken.Authenticate(ctx, map[string]any{"token": "error"}); err == nil {
		t.Fatal("an auth error authenticated")
	}
	_, _, _ = broken.ExpectClose(ctx)
	eventually(t, "the two closed", func() bool { return k.h.Stats().Clients == 0 })
	if _, err := fxtest.DialHeader(ctx, k.url, http.Header{"Origin": {"https://evil.example"}}); !isStatus(err, http.StatusForbidden) {
		t.Fatalf("foreign origin: %v", err)
	}
	k.dial()
	k.dial()
	if _, err := fxtest.Dial(ctx, k.url); !isStatus(err, http.StatusServiceUnavailable) {
		t.Fatalf("third connection over MaxConnections 2: %v", err)
	}
	s := k.h.Stats()
	if s.AuthRejected != 1 || s.AuthErrors != 1 || s.RefusedOrigin != 1 || s.RefusedAtLimit != 1 {
		t.Fatalf("Stats %+v: want 1 rejected, 1 auth error, 1 refused origin, 1 refused at the limit", s)
	}
}

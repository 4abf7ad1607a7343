package helper_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/protocol"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
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

// Received counts every complete client message, whatever its event and
// whether it was taken; pings (Sync) are control frames and do not count.
// IdleTimeouts tells the idle sweep's 1001 closes from a shutdown's.
func TestStatsReceivedAndIdleTimeouts(t *testing.T) {
	k := newKit(t, rawSocket, func(c *helper.Config) { c.Options.IdleTimeout = 400 * time.Millisecond })
	ctx := context.Background()
	c, _ := k.login("u1") // 1: authenticate
	for _, send := range []func() error{
		c.Heartbeat,                                       // 2
		func() error { return c.Join("room-a") },          // 3
		func() error { return c.Emit("chat", "hi") },      // 4: the app's
		func() error { return c.SendText("not json") },    // 5: answered with an error
		func() error { return c.SendText(`{"event":7}`) }, // 6: ignored
	} {
		if err := send(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := k.h.Stats().Received; got != 6 {
		t.Fatalf("Received = %d, want 6", got)
	}
	if s := k.h.Stats(); s.IdleTimeouts != 0 {
		t.Fatalf("IdleTimeouts = %d before any idle close", s.IdleTimeouts)
	}
	silent := k.rawDial() // answers no ping, sends nothing
	defer silent.Close()
	eventually(t, "the silent socket cut for idleness", func() bool { return k.h.Stats().IdleTimeouts == 1 })
	if s := k.h.Stats(); s.ServerCloses[int(protocol.CloseGoingAway)] != 1 {
		t.Fatalf("ServerCloses = %v, want the idle close counted as 1001 too", s.ServerCloses)
	}
}

// A client that neither reads nor answers the close is still registered
// at the next sweeps, until the close grace runs out: its heartbeat (and
// idle) timeout is logged once, not at every sweep (from a game-server
// trial: six lines for one dead player).
func TestTimeoutsLoggedOnce(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		opts       func(*helper.Options)
	}{
		{"heartbeat", "heartbeat timeout", func(o *helper.Options) {
			o.HeartbeatInterval, o.HeartbeatTimeout = 100*time.Millisecond, 300*time.Millisecond
		}},
		{"idle", "idle timeout", func(o *helper.Options) {
			o.IdleTimeout, o.DisablePings = 300*time.Millisecond, true
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.InfoLevel)
			k := newKit(t, rawSocket, func(c *helper.Config) { tc.opts(&c.Options); c.Logger = zap.New(core) })
			conn, _ := k.stalledClient("dead")
			defer conn.Close()
			eventually(t, "the dead client let go", func() bool { return k.h.Stats().Clients == 0 })
			if n := logs.FilterMessage(tc.line).Len(); n != 1 {
				t.Fatalf("%q logged %d times for one client", tc.line, n)
			}
		})
	}
}

// HandlerErrors counts every app callback that failed, not only the
// message handler (from a dashboard trial: a failing validate-room was
// visible in the log only).
func TestHandlerErrorsCountEveryCallback(t *testing.T) {
	fail := errors.New("backend down")
	k := newKit(t, rawSocket, func(c *helper.Config) {
		c.Handlers.ValidateRoom = func(context.Context, helper.ValidateRoomRequest) ([]string, error) { return nil, fail }
		c.Handlers.ClientConnected = func(context.Context, helper.ClientInfo) error { return fail }
		c.Handlers.ClientDisconnected = func(context.Context, helper.ClientInfo) error { panic("disconnect handler bug") }
	})
	c, _ := k.login("u1") // connected: 1
	if err := c.Join("room-a"); err != nil {
		t.Fatal(err)
	}
	if err := c.Sync(context.Background()); err != nil { // validate-room: 2
		t.Fatal(err)
	}
	_ = c.Close() // disconnected, a panic: 3
	eventually(t, "three failed callbacks counted", func() bool { return k.h.Stats().HandlerErrors == 3 })
}

// droppingBroker is a broker that says it dropped messages.
type droppingBroker struct {
	broker.Broker
	dropped uint64
}

func (b droppingBroker) Dropped() uint64 { return b.dropped }

// What the broker dropped, which senders were told had gone out, shows in
// the helper's Stats (an IoT trial found it only in the Redis broker's, by
// a type assertion).
func TestStatsBrokerDropped(t *testing.T) {
	k := newKit(t, rawSocket, func(c *helper.Config) { c.Broker = droppingBroker{broker.NewMemory(), 7} })
	if got := k.h.Stats().BrokerDropped; got != 7 {
		t.Fatalf("BrokerDropped = %d, want the broker's 7", got)
	}
	if got := newKit(t, rawSocket, nil).h.Stats().BrokerDropped; got != 0 {
		t.Fatalf("BrokerDropped = %d with a broker that keeps no count, want 0", got)
	}
}

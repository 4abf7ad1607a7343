package websocket_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	websocket "github.com/fxws/websocket"
	"github.com/fxws/websocket/broker/redisbroker"
	"github.com/fxws/websocket/emitter"
	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/internal/redistest"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"
)

// TestRedisTwoInstances: two apps bound to one real Redis are two instances
// of a deployment, in both subscription modes.
func TestRedisTwoInstances(t *testing.T) {
	r := redistest.Start(t)
	for _, mode := range []redisbroker.Mode{redisbroker.ModeAudience, redisbroker.ModePattern} {
		t.Run(mode.String(), func(t *testing.T) {
			servers := fxtest.StartCluster(t, 2, r.URL(),
				websocket.WithAuthenticate(auth),
				websocket.WithServerOptions(websocket.ServerOptions{RedisBroker: redisbroker.Options{Mode: mode}}),
			)
			ctx := ctxT(t)
			a, _ := servers[0].Connect(t, token("a"))
			b, bID := servers[1].Connect(t, token("b"))
			if err := servers[0].Helper().Send(ctx, "", "all", 1); err != nil {
				t.Fatal(err)
			}
			for _, c := range []*fxtest.Client{a, b} {
				if _, err := c.Expect(ctx, "all"); err != nil {
					t.Fatal(err)
				}
			}
			if err := servers[0].Helper().Send(ctx, bID, "direct", 2); err != nil {
				t.Fatal(err)
			}
			if m, err := b.Expect(ctx, "direct"); err != nil || string(m.Data) != "2" {
				t.Fatalf("direct: %v %s", err, m.Data)
			}
			if err := servers[1].Helper().SendToUser(ctx, "a", "user", 3); err != nil {
				t.Fatal(err)
			}
			if _, err := a.Expect(ctx, "user"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestRedisPingFailsStart: an unreachable Redis fails OnStart with an error
// naming the binding, after the bounded ping (not the whole start timeout).
func TestRedisPingFailsStart(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	defer rdb.Close()
	app := newRedisApp(t, rdb)
	err := app.Start(ctxT(t))
	if err == nil {
		_ = app.Stop(context.Background())
		t.Fatal("started with an unreachable Redis")
	}
	for _, w := range []string{"@app/websocket/redis-connection", "PING"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

// TestRedisClientNotClosed: the module never closes the app's Redis client.
// Stop closes the module's subscription connections (spec: shutdown closes
// the Redis connections), but not the app's client.
func TestRedisClientNotClosed(t *testing.T) {
	r := redistest.Start(t)
	rdb := r.Client()
	srv, err := fxtest.Start(websocket.WithAuthenticate(auth), websocket.WithRedisConnection(rdb))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	c, err := fxtest.Dial(ctx, srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Abort() }()
	if _, err := c.Authenticate(ctx, token("held")); err != nil {
		t.Fatal(err)
	}
	if chans, err := rdb.PubSubChannels(ctx, "*").Result(); err != nil || len(chans) == 0 {
		t.Fatalf("channels subscribed while serving: %v %v", chans, err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("the app's client after stop: %v", err)
	}
	// Redis drops a closed connection's subscriptions once it has read
	// the close, which may come after a command on another connection.
	deadline := time.Now().Add(2 * time.Second)
	for {
		chans, err := rdb.PubSubChannels(ctx, "*").Result()
		if err == nil && len(chans) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("channels still subscribed after stop: %v %v", chans, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A Redis that comes up while the module starts is waited for, within
// RedisPingTimeout, as the emitter waits for it; one that answers with an
// error (a password missing) fails the start at once.
func TestRedisWaitedForOnStart(t *testing.T) {
	r := redistest.Start(t)
	rdb := r.Client(func(o *redis.Options) { o.MaxRetries = -1 })
	r.Kill()
	app := newRedisApp(t, rdb)
	go func() {
		time.Sleep(700 * time.Millisecond)
		r.Restart()
	}()
	ctx := ctxT(t)
	if err := app.Start(ctx); err != nil {
		t.Fatalf("start while Redis came up: %v", err)
	}
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	if err := r.Client().ConfigSet(ctx, "requirepass", "secret").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = r.Client(func(o *redis.Options) { o.Password = "secret" }).ConfigSet(context.Background(), "requirepass", "").Err()
	})
	wrong := r.Client(func(o *redis.Options) { o.MaxRetries = -1 })
	app = newRedisApp(t, wrong)
	start := time.Now()
	err := app.Start(ctx)
	if err == nil {
		_ = app.Stop(ctx)
		t.Fatal("started without the password")
	}
	if d := time.Since(start); d > 2*time.Second || !strings.Contains(err.Error(), "failed PING") {
		t.Fatalf("a missing password failed the start after %v with %v; want at once, naming PING", d, err)
	}
}

// newRedisApp builds (does not start) the module on rdb, listening on an
// ephemeral port.
func newRedisApp(t *testing.T, rdb redis.UniversalClient) *fx.App {
	t.Helper()
	app := fx.New(fx.NopLogger, websocket.Module,
		websocket.WithAuthenticate(auth),
		websocket.WithRedisConnection(rdb),
		websocket.WithServerOptions(websocket.ServerOptions{Addr: "127.0.0.1:0"}),
	)
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	return app
}

// A Redis restart shows in the helper's Stats as a count, which a scrape
// sees however short the reconnection (a chat trial polled
// BrokerConnected once a second and never saw it false, so its presence,
// lost with a Redis without persistence, was never written again).
func TestRedisRestartCountedInStats(t *testing.T) {
	r := redistest.Start(t)
	servers := fxtest.StartCluster(t, 1, r.URL(), websocket.WithAuthenticate(auth))
	h := servers[0].Helper()
	if n := h.Stats().BrokerReconnects; n != 0 {
		t.Fatalf("BrokerReconnects %d after the start, want 0", n)
	}
	r.Kill()
	r.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for st := h.Stats(); st.BrokerReconnects != 1 || !st.BrokerConnected; st = h.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("after a Redis restart: BrokerReconnects %d, BrokerConnected %v; want 1, true", st.BrokerReconnects, st.BrokerConnected)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBrokerRestoredHandlerAfterRedisRestart: the broker-restored handler
// runs once the subscription is back after each Redis restart, so that
// what it sends through Redis (state a feed sends again) reaches this
// instance's clients; bound as a func literal, it is taken too.
func TestBrokerRestoredHandlerAfterRedisRestart(t *testing.T) {
	r := redistest.Start(t)
	rdb := r.Client()
	defer rdb.Close()
	e, err := emitter.New(rdb, emitter.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	defer e.Stop(context.Background())

	for _, tc := range []struct {
		name     string
		restarts int
		bind     func(func(context.Context, helper.BrokerRestoredInfo) error) fx.Option
	}{
		{"named type", 2, func(f func(context.Context, helper.BrokerRestoredInfo) error) fx.Option {
			return websocket.WithBrokerRestored(f)
		}},
		{"func literal", 1, func(f func(context.Context, helper.BrokerRestoredInfo) error) fx.Option {
			return fx.Supply(fx.Annotated{Name: "@app/websocket/broker-restored-handler", Target: f})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := make(chan helper.BrokerRestoredInfo, 4)
			var sendErrs atomic.Int64
			servers := fxtest.StartCluster(t, 1, r.URL(), websocket.WithAuthenticate(auth),
				tc.bind(func(ctx context.Context, info helper.BrokerRestoredInfo) error {
					// Through Redis: only a live subscription brings it back.
					if err := e.ToUser(ctx, "a", "state", info.Restorations); err != nil {
						sendErrs.Add(1)
						return err
					}
					calls <- info
					return nil
				}))
			h := servers[0].Helper()
			c, _ := servers[0].Connect(t, token("a"))
			ctx := ctxT(t)
			for restart := 1; restart <= tc.restarts; restart++ {
				r.Kill()
				r.Restart()
				var info helper.BrokerRestoredInfo
				select {
				case info = <-calls:
				case <-ctx.Done():
					t.Fatalf("restart %d: the broker-restored handler was not called (%d sends from it failed)", restart, sendErrs.Load())
				}
				if info.Restorations != 1 || info.Down <= 0 {
					t.Fatalf("restart %d: %+v, want one restoration with a positive Down", restart, info)
				}
				if n := h.Stats().BrokerReconnects; n != uint64(restart) {
					t.Fatalf("restart %d: BrokerReconnects %d in the handler's wake", restart, n)
				}
				if _, err := c.Expect(ctx, "state"); err != nil {
					t.Fatalf("restart %d: what the handler sent through Redis did not arrive: %v", restart, err)
				}
			}
			select {
			case info := <-calls:
				t.Fatalf("a call with no restoration: %+v", info)
			case <-time.After(200 * time.Millisecond):
			}
			if n := h.Stats().HandlerErrors; n != 0 {
				t.Fatalf("HandlerErrors %d", n)
			}
		})
	}
}

package websocket_test

// Misconfigurations that used to run quietly in a way the app did not ask
// for; each found in an API review.

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	websocket "github.com/fxws/websocket"
	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/broker/redisbroker"
	"github.com/fxws/websocket/helper"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"
)

func localListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}

// Options for the Redis broker with no Redis bound (a nil client counts as
// none) would have each instance run alone on the in-process broker.
func TestRedisBrokerOptionsWithoutRedisFailNew(t *testing.T) {
	app := fx.New(fx.NopLogger, websocket.Module,
		websocket.WithAuthenticate(auth),
		websocket.WithListener(localListener(t)),
		websocket.WithServerOptions(websocket.ServerOptions{
			RedisBroker: redisbroker.Options{Mode: redisbroker.ModeSharded},
		}),
	)
	if err := app.Err(); err == nil || !strings.Contains(err.Error(), "RedisBroker is set but no Redis connection is bound") {
		t.Fatalf("fx.New: %v", err)
	}
	// With a broker of the app's own, as the test kit binds, the same
	// options are fine: one set may serve production and tests.
	app = fx.New(fx.NopLogger, websocket.Module,
		websocket.WithAuthenticate(auth),
		websocket.WithListener(localListener(t)),
		websocket.WithBroker(broker.NewMemory()),
		websocket.WithServerOptions(websocket.ServerOptions{
			RedisBroker: redisbroker.Options{Mode: redisbroker.ModeSharded},
		}),
	)
	if err := app.Err(); err != nil {
		t.Fatalf("RedisBroker options with a broker bound: %v", err)
	}
}

// The options in the near types they are easily bound in (the helper's,
// whose fields go doc shows, or a pointer) are taken, not ignored.
func TestServerOptionsInNearTypesTaken(t *testing.T) {
	for name, supply := range map[string]fx.Option{
		"helper.Options": fx.Supply(fx.Annotate(helper.Options{Path: "/realtime"}, fx.ResultTags(websocket.ServerOptionsKey))),
		"*ServerOptions": fx.Supply(fx.Annotate(&websocket.ServerOptions{Options: helper.Options{Path: "/realtime"}}, fx.ResultTags(websocket.ServerOptionsKey))),
	} {
		var path string
		app := fx.New(fx.NopLogger, websocket.Module,
			websocket.WithAuthenticate(auth),
			websocket.WithListener(localListener(t)),
			supply,
			fx.Invoke(func(h *helper.WebSocketServerHelper) { path = h.Path() }),
		)
		if err := app.Err(); err != nil || path != "/realtime" {
			t.Errorf("%s under ServerOptionsKey: path %q, err %v", name, path, err)
		}
	}
	app := fx.New(fx.NopLogger, websocket.Module,
		websocket.WithAuthenticate(auth),
		websocket.WithListener(localListener(t)),
		websocket.WithServerOptions(websocket.ServerOptions{Addr: "127.0.0.1:0"}),
		fx.Supply(fx.Annotate(helper.Options{Path: "/realtime"}, fx.ResultTags(websocket.ServerOptionsKey))),
	)
	if err := app.Err(); err == nil || !strings.Contains(err.Error(), "bound twice") {
		t.Errorf("options bound as ServerOptions and helper.Options: %v", err)
	}
}

// A Path no request path can equal (a query, a fragment, an escape, a
// mux wildcard) is refused, in Validate and so in fx.New.
func TestPathThatCannotMatchIsRefused(t *testing.T) {
	for _, p := range []string{"/ws?v=1", "/ws#x", "/ws/{tenant}", "/ws%20x", "/w s"} {
		if err := (helper.Options{Path: p}).Validate(); err == nil || !strings.Contains(err.Error(), "plain path") {
			t.Errorf("Path %q: %v", p, err)
		}
	}
	app := fx.New(fx.NopLogger, websocket.Module,
		websocket.WithAuthenticate(auth),
		websocket.WithHTTPMux(http.NewServeMux()),
		websocket.WithServerOptions(websocket.ServerOptions{Options: helper.Options{Path: "/ws/{tenant}"}}),
	)
	if app.Err() == nil {
		t.Error("a wildcard Path passed fx.New")
	}
	for _, p := range []string{"/ws", "/", "/api/v1/realtime/", "/ws-é"} {
		if err := (helper.Options{Path: p}).Validate(); err != nil {
			t.Errorf("Path %q refused: %v", p, err)
		}
	}
}

// AllowedOrigins entries no browser's Origin can equal are refused.
func TestAllowedOriginsThatCannotMatchAreRefused(t *testing.T) {
	for _, o := range []string{"https://user@app.example.com", "https://app.example.com:99999",
		"https://app.example.com:port", "https://app.example.com:0", "ht_tps://app.example.com", "https://:443"} {
		if err := (helper.Options{AllowedOrigins: []string{o}}).Validate(); err == nil {
			t.Errorf("AllowedOrigins %q accepted", o)
		}
	}
	for _, o := range []string{"https://app.example.com:8443", "http://[::1]:3000", "[::1]", "localhost:8080", "*", "https://*.example.com"} {
		if err := (helper.Options{AllowedOrigins: []string{o}}).Validate(); err != nil {
			t.Errorf("AllowedOrigins %q refused: %v", o, err)
		}
	}
}

// The Redis broker's options are checked with the rest.
func TestRedisBrokerOptionsValidated(t *testing.T) {
	o := websocket.ServerOptions{RedisBroker: redisbroker.Options{PublishTimeout: -time.Second, Workers: -1, QueueSize: -1, Mode: redisbroker.Mode(7)}}
	err := o.Validate()
	for _, want := range []string{"PublishTimeout must not be negative", "Workers must not be negative", "QueueSize must not be negative", "Mode 7"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v; want it to say %q", err, want)
		}
	}
}

// A redis.Ring is refused in fx.New, as the emitter refuses it in New.
func TestRingRefusedAtNew(t *testing.T) {
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1"}, HeartbeatFrequency: time.Hour})
	defer ring.Close()
	app := fx.New(fx.NopLogger, websocket.Module,
		websocket.WithAuthenticate(auth),
		websocket.WithListener(localListener(t)),
		websocket.WithRedisConnection(ring),
	)
	if err := app.Err(); !errors.Is(err, redisbroker.ErrRing) {
		t.Fatalf("fx.New with a redis.Ring: %v", err)
	}
}

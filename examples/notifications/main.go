// Command notifications is a notification service whose notifications
// arrive, the README's recipe "Notifications that must arrive" made
// runnable. Pub/sub reaches who is connected at that moment, so each
// notification is stored first, numbered per user, and sent live as a
// hint; a device sends the number of the last one it applied when it
// connects, gets what follows from the store, and asks again when it sees
// a number skipped.
//
//	go run ./examples/notifications                    # the server, on 127.0.0.1:3000
//	go run ./examples/notifications -device alice      # a device of alice, in another terminal
//	curl -d '{"text":"hi"}' http://127.0.0.1:3000/notify/alice
//
// With REDIS_URL set, the store and the broker are that Redis, so several
// servers (each with its own ADDR) share the users, and a worker process
// can notify without a socket (emitter):
//
//	REDIS_URL=redis://127.0.0.1:6379 go run ./examples/notifications -notify alice '{"text":"hi"}'
//
// Environment: ADDR (127.0.0.1:3000), REDIS_URL (none: an in-memory store
// and the in-process broker, one instance), BACKLOG (100: notifications
// kept per user; a device further behind is told to reset).
//
// The parts: store.go (Store, in memory and on Redis), server.go (the
// server's handlers and the HTTP route), device.go (the device's rules),
// worker.go (the emitter side).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	websocket "github.com/fxws/websocket"
	"github.com/fxws/websocket/helper"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// config is the environment, read once.
type config struct {
	Addr     string // ADDR
	RedisURL string // REDIS_URL; empty: in memory, one instance
	Backlog  int    // BACKLOG
}

func loadConfig(getenv func(string) string) (config, error) {
	cfg := config{Addr: getenv("ADDR"), RedisURL: getenv("REDIS_URL"), Backlog: DefaultBacklog}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:3000"
	}
	if v := getenv("BACKLOG"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return cfg, fmt.Errorf("BACKLOG=%q is not a positive integer", v)
		}
		cfg.Backlog = n
	}
	return cfg, nil
}

func main() {
	device := flag.String("device", "", "run a device of this user: print what it applies, reconnect and catch up")
	last := flag.Uint64("last", 0, "with -device: the number of the last notification the device applied")
	notify := flag.String("notify", "", "store and send a notification for this user from a worker (needs REDIS_URL); the JSON data is the argument")
	flag.Parse()
	cfg, err := loadConfig(os.Getenv)
	if err == nil {
		switch {
		case *device != "":
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			err = runDevice(ctx, cfg, *device, *last, os.Stdout)
			stop()
		case *notify != "":
			err = runWorker(context.Background(), cfg, *notify, flag.Arg(0), os.Stdout)
		default:
			err = runServer(cfg)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "notifications:", err)
		os.Exit(1)
	}
}

// runServer serves until SIGINT or SIGTERM.
func runServer(cfg config) error {
	zc := zap.NewDevelopmentConfig()
	zc.Level = zap.NewAtomicLevelAt(zap.InfoLevel)
	zc.DisableStacktrace = true // warnings say enough without one
	log, err := zc.Build()
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	app := fx.New(
		// fx's own events at debug (hidden), its errors still shown.
		fx.WithLogger(func() fxevent.Logger {
			z := &fxevent.ZapLogger{Logger: log}
			z.UseLogLevel(zapcore.DebugLevel)
			return z
		}),
		websocket.Module,
		// The module serves the app's mux (the WebSocket path and the
		// notify route) on this listener, as fxtest does in the tests.
		websocket.WithListener(ln),
		appOptions(cfg, log),
	)
	// What fx's Run does, but for the usage, which is printed once the
	// signals are caught (Wait): a SIGTERM right after it stops cleanly.
	start, cancel := context.WithTimeout(context.Background(), app.StartTimeout())
	defer cancel()
	if err := app.Start(start); err != nil {
		_ = ln.Close()
		return err
	}
	sig := app.Wait()
	usage(os.Stdout, cfg, ln.Addr().String())
	<-sig
	stop, cancel := context.WithTimeout(context.Background(), app.StopTimeout())
	defer cancel()
	return app.Stop(stop)
}

// appOptions is the application but for websocket.Module and the listener,
// which main and the tests (fxtest) each bring.
func appOptions(cfg config, log *zap.Logger) fx.Option {
	opts := []fx.Option{
		fx.Supply(log),
		websocket.WithAuthenticate(authenticate),
		fx.Provide(NewNotifier),
		fx.Provide(fx.Annotate(
			func(n *Notifier) (helper.ClientConnectedFunc, helper.MessageFunc, helper.BrokerRestoredFunc) {
				return n.connected, n.message, n.restored
			},
			fx.ResultTags(websocket.ClientConnectedHandlerKey, websocket.MessageHandlerKey, websocket.BrokerRestoredHandlerKey))),
		// Routes that need the helper are added from an Invoke: a mux made
		// with them would be a dependency of the helper (a cycle).
		fx.Provide(fx.Annotate(http.NewServeMux, fx.ResultTags(websocket.HTTPMuxKey))),
		fx.Invoke(fx.Annotate(func(mux *http.ServeMux, n *Notifier) {
			mux.HandleFunc("POST /notify/{user}", n.serveNotify)
		}, fx.ParamTags(websocket.HTTPMuxKey))),
	}
	if cfg.RedisURL == "" {
		return fx.Options(append(opts, fx.Provide(func() Store { return NewMemoryStore(cfg.Backlog) }))...)
	}
	// One Redis for the broker and the store: instances share the users'
	// channels and their numbers.
	return fx.Options(append(opts,
		fx.Provide(fx.Annotate(func(lc fx.Lifecycle) (redis.UniversalClient, error) {
			opt, err := redis.ParseURL(cfg.RedisURL)
			if err != nil {
				return nil, fmt.Errorf("REDIS_URL: %w", err)
			}
			c := redis.NewClient(opt)
			// Appended here, the hook closes the client after the module
			// has stopped (fx stops in reverse order).
			lc.Append(fx.StopHook(c.Close))
			return c, nil
		}, fx.ResultTags(websocket.RedisConnectionKey))),
		fx.Provide(fx.Annotate(func(rdb redis.UniversalClient) Store {
			return NewRedisStore(rdb, cfg.Backlog)
		}, fx.ParamTags(websocket.RedisConnectionKey))),
	)...)
}

// usage says what to do with a running server.
func usage(w io.Writer, cfg config, addr string) {
	mode := "an in-memory store and the in-process broker: one instance (set REDIS_URL for Redis)"
	env := ""
	if cfg.Addr != "127.0.0.1:3000" {
		env = "ADDR=" + cfg.Addr + " "
	}
	if cfg.RedisURL != "" {
		mode = "Redis for the store and the broker: start more with other ADDRs"
	}
	fmt.Fprintf(w, `
notifications on ws://%[1]s/ws, with %[2]s.

A device of alice (prints what it applies; stop it, notify, start it with -last to see the catch-up):
  %[3]sgo run ./examples/notifications -device alice
Store and send a notification for alice:
  curl -d '{"text":"hello"}' http://%[1]s/notify/alice
`, addr, mode, env)
	if cfg.RedisURL != "" {
		fmt.Fprintf(w, `From a worker process without a socket (emitter; no live send while alice is online nowhere):
  REDIS_URL=%s go run ./examples/notifications -notify alice '{"text":"from a worker"}'
`, cfg.RedisURL)
	}
	fmt.Fprintf(w, `A client of your own sends {"event":"authenticate","data":{"token":"alice","last":0}}, then gets
"backlog" {"last","from","reset"?,"notifications":[{"seq","data"}…]} and "notification" {"seq","data"}.

`)
}

// Command demo is the fxws showcase server: one fx
// application that wires every hook of websocket.Module and exposes a small
// REST control API on the same port as the WebSocket endpoint. Black-box
// tests drive it (and the original Ignis server, configured the same way)
// from outside, so its events, REST routes and configuration follow the
// original's demo to the letter.
//
// Configuration is by environment (see config.go); with no REDIS_URL it runs
// on the in-process broker, so `make run` needs nothing else. SIGTERM or
// SIGINT stops it gracefully: every client gets close 1001.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	websocket "github.com/fxws/websocket"
	"github.com/fxws/websocket/component"
	"github.com/fxws/websocket/helper"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func main() {
	cfg, err := loadConfig(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(2)
	}
	log, err := newLogger(os.Getenv("LOG_LEVEL"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo: logger:", err)
		os.Exit(2)
	}
	defer func() { _ = log.Sync() }()
	fx.New(appOptions(cfg, log), debugOption(os.Getenv("DEMO_DEBUG_ADDR"))).Run()
}

// appOptions is the whole application.
func appOptions(cfg config, log *zap.Logger) fx.Option {
	d := newDemo()
	opts := []fx.Option{
		fx.Supply(log),
		// fx's own events (every provide and invoke) at debug: LOG_LEVEL=debug
		// shows them; its errors stay at error.
		fx.WithLogger(func(l *zap.Logger) fxevent.Logger {
			z := &fxevent.ZapLogger{Logger: l}
			z.UseLogLevel(zapcore.DebugLevel)
			return z
		}),

		websocket.Module,
		websocket.WithServerOptions(cfg.serverOptions()),
		websocket.WithAuthenticate(d.authenticate),
		websocket.WithValidateRoom(d.validateRoom),
		websocket.WithClientConnected(d.clientConnected),
		websocket.WithClientDisconnected(d.clientDisconnected),
		// The message handler sends through the helper it belongs to.
		fx.Provide(fx.Annotate(d.messageHandler, fx.ResultTags(websocket.MessageHandlerKey))),
		// The module mounts itself on this mux; the demo serves it, next to
		// the REST API, on one port (d.serve).
		fx.Provide(fx.Annotate(http.NewServeMux, fx.ResultTags(websocket.HTTPMuxKey))),
		fx.Invoke(fx.Annotate(d.serve, fx.ParamTags(``, ``, ``, ``, websocket.HTTPMuxKey))),
		fx.Supply(cfg),
	}
	if cfg.RedisURL != "" {
		opts = append(opts, fx.Provide(fx.Annotate(newRedis, fx.ResultTags(websocket.RedisConnectionKey))))
	}
	if cfg.RequireEncryption {
		// The Ignis ECDH scheme: handshake, encrypted delivery, decryption
		// of encrypted client events, and keys dropped on disconnect before
		// d.clientDisconnected runs.
		opts = append(opts, websocket.WithECDHEncryption())
	}
	return fx.Options(opts...)
}

// newRedis connects to REDIS_URL; the module pings it on start. The client
// belongs to the app, which closes it after the module has stopped. A URL
// with a master_name parameter names Sentinels
// (redis://sentinel:26379?master_name=mymaster&addr=sentinel2:26379):
// the client finds the master through them and follows its failovers.
func newRedis(lc fx.Lifecycle, cfg config) (redis.UniversalClient, error) {
	var c *redis.Client
	if u, err := url.Parse(cfg.RedisURL); err == nil && u.Query().Has("master_name") {
		opt, err := redis.ParseFailoverURL(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		c = redis.NewFailoverClient(opt)
	} else {
		opt, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		c = redis.NewClient(opt)
	}
	lc.Append(fx.StopHook(c.Close))
	return c, nil
}

// serve runs the HTTP server for the WebSocket endpoint and the REST API.
// It starts after the module (its hooks come later), so /healthz answers
// only once the server is ready, and it stops before the module, which then
// closes every client with 1001.
func (d *demo) serve(lc fx.Lifecycle, cfg config, log *zap.Logger, h *helper.WebSocketServerHelper, wsMux *http.ServeMux) {
	srv := &http.Server{
		Handler:           d.routes(h, cfg.WSPath, wsMux),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          component.HTTPErrorLog(log),
	}
	done := make(chan struct{})
	lc.Append(fx.Hook{
		OnStart: func(ctx context.Context) error {
			lcfg := component.ListenConfig(srv.ReadHeaderTimeout)
			ln, err := lcfg.Listen(ctx, "tcp", net.JoinHostPort(cfg.Host, cfg.Port))
			if err != nil {
				return fmt.Errorf("demo: listen: %w", err)
			}
			go func() {
				defer close(done)
				// Upgrades on the WebSocket path are answered as they are
				// accepted, the rest served by srv.
				if err := h.Serve(srv, ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
					log.Error("demo: serve", zap.Error(err))
				}
			}()
			log.Info("demo listening", zap.String("addr", ln.Addr().String()), zap.String("wsPath", cfg.WSPath))
			return nil
		},
		OnStop: func(ctx context.Context) error {
			err := srv.Shutdown(ctx)
			<-done
			return err
		},
	})
}

// newLogger is zap's production logger; LOG_LEVEL (debug, info, warn,
// error) sets its level and turns its sampling off, so that at debug every
// connection is logged: what the original does at its default level, for
// comparisons of CPU per connection that log alike.
func newLogger(level string) (*zap.Logger, error) {
	cfg := zap.NewProductionConfig()
	if level != "" {
		l, err := zap.ParseAtomicLevel(level)
		if err != nil {
			return nil, fmt.Errorf("LOG_LEVEL: %w", err)
		}
		cfg.Level = l
		cfg.Sampling = nil
	}
	return cfg.Build()
}

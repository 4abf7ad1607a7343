// Command encrypted is a WebSocket server that requires the Ignis ECDH
// scheme (package encryption), with a browser page that speaks it through
// WebCrypto (ECDH P-256, HKDF-SHA256, AES-256-GCM): open http://HOST:PORT/
// in a browser. It is an fx app: websocket.Module with
// websocket.WithECDHEncryption, mounted on the app's mux next to the page
// and a small REST API.
//
// Each client is greeted with a `welcome` message as soon as it is
// connected (sealed, like everything after `connected`): the page must
// not lose what arrives while it is still deriving its key.
//
// Environment: HOST (127.0.0.1), PORT (3000), WS_PATH (/ws), TICK_MS (2000;
// 0 turns the periodic broadcast off), WELCOME (1; 0 greets nobody, for
// load runs), REQUIRE_ENCRYPTION (1; 0 serves plain clients, for
// comparisons), QUIET (1: no logs), CPUPROFILE (a file for a CPU profile of
// the whole run). Tokens are those of the demo contract:
// `valid-<userId>`. REST: GET /healthz, POST /ws-api/broadcast
// {"event","data"}, POST /ws-api/clients/{id}/send {"event","data"}.
// SIGINT or SIGTERM stops it; every client gets close 1001.
package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	websocket "github.com/fxws/websocket"
	"github.com/fxws/websocket/encryption"
	"github.com/fxws/websocket/helper"
	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"
	"go.uber.org/zap"
)

//go:embed index.html
var page []byte

func env(k, d string) string {
	if v, ok := os.LookupEnv(k); ok && v != "" {
		return v
	}
	return d
}

// config is the environment, read once.
type config struct {
	Addr              string
	Path              string
	Tick              time.Duration
	RequireEncryption bool
	Welcome           bool
	Quiet             bool
}

func main() {
	cfg := config{
		Addr:              net.JoinHostPort(env("HOST", "127.0.0.1"), env("PORT", "3000")),
		Path:              env("WS_PATH", "/ws"),
		RequireEncryption: env("REQUIRE_ENCRYPTION", "1") == "1",
		Welcome:           env("WELCOME", "1") == "1",
		Quiet:             env("QUIET", "") == "1",
	}
	if ms, _ := strconv.Atoi(env("TICK_MS", "2000")); ms > 0 {
		cfg.Tick = time.Duration(ms) * time.Millisecond
	}
	if path := env("CPUPROFILE", ""); path != "" { // for load runs
		f, err := os.Create(path)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	logger := zap.NewNop()
	if !cfg.Quiet {
		var err error
		if logger, err = zap.NewProduction(); err != nil {
			log.Fatal(err)
		}
	}
	defer func() { _ = logger.Sync() }()
	fx.New(appOptions(cfg, logger)).Run()
}

// appOptions is the whole application.
func appOptions(cfg config, logger *zap.Logger) fx.Option {
	opts := []fx.Option{
		fx.Supply(cfg, logger),
		fx.WithLogger(func(l *zap.Logger) fxevent.Logger { return &fxevent.ZapLogger{Logger: l} }),

		websocket.Module,
		websocket.WithServerOptions(websocket.ServerOptions{Options: helper.Options{Path: cfg.Path}}),
		websocket.WithAuthenticate(authenticate),
		fx.Provide(fx.Annotate(newMessageHandler, fx.ResultTags(websocket.MessageHandlerKey))),
		// The module mounts itself on this mux; serve serves it with the
		// page and the REST API on one port.
		fx.Provide(fx.Annotate(http.NewServeMux, fx.ResultTags(websocket.HTTPMuxKey))),
		fx.Invoke(serve),
	}
	if cfg.Welcome {
		opts = append(opts, fx.Provide(fx.Annotate(newWelcome, fx.ResultTags(websocket.ClientConnectedHandlerKey))))
	}
	if cfg.RequireEncryption {
		// Handshake, sealed delivery, decryption of sealed client events,
		// keys dropped on disconnect.
		opts = append(opts, websocket.WithECDHEncryption())
	}
	return fx.Options(opts...)
}

// authenticate accepts {"token":"valid-<userId>"}.
func authenticate(_ context.Context, req helper.AuthenticateRequest) (*helper.AuthResult, error) {
	var d struct {
		Token string `json:"token"`
	}
	_ = json.Unmarshal(req.Data, &d)
	if user, ok := strings.CutPrefix(d.Token, "valid-"); ok {
		return &helper.AuthResult{UserID: user}, nil
	}
	return nil, nil
}

// newMessageHandler answers `echo` to its sender and spreads `chat` to
// everyone. With encryption on, messages arrive decrypted and leave sealed.
func newMessageHandler(ref *websocket.HelperRef) helper.MessageFunc {
	return func(ctx context.Context, req helper.MessageRequest) error {
		switch req.Message.Event {
		case "echo":
			return ref.Helper().Send(ctx, req.ClientID, "echo", req.Message.Data)
		case "chat":
			return ref.Helper().Send(ctx, "", "chat", map[string]any{"from": req.UserID, "data": req.Message.Data})
		}
		return nil
	}
}

// newWelcome greets each client right after its `connected`.
func newWelcome(ref *websocket.HelperRef) helper.ClientConnectedFunc {
	return func(_ context.Context, info helper.ClientInfo) error {
		_, err := ref.Helper().SendToClient(info.ClientID, "welcome", map[string]string{"userId": info.UserID})
		return err
	}
}

type serveParams struct {
	fx.In

	Lifecycle fx.Lifecycle
	Config    config
	Logger    *zap.Logger
	Helper    *helper.WebSocketServerHelper
	Mux       *http.ServeMux   `name:"@app/websocket/http-mux"`
	ECDH      *encryption.ECDH `name:"@app/websocket/ecdh" optional:"true"` // websocket.ECDHKey
}

// serve runs the HTTP server (page, REST API, the mounted WebSocket
// endpoint) and the periodic tick. Its hooks come after the module's: it
// listens once the helper has started, and it stops first, before the
// module closes every client with 1001.
func serve(p serveParams) {
	h := p.Helper
	mux := p.Mux
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(page)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"ok":true}`))
	})
	send := func(w http.ResponseWriter, r *http.Request, destination string) {
		var body struct {
			Event string          `json:"event"`
			Data  json.RawMessage `json:"data"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, `{"error":"bad body"}`, http.StatusBadRequest)
			return
		}
		if err := h.Send(r.Context(), destination, body.Event, body.Data); err != nil {
			http.Error(w, `{"error":"send failed"}`, http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte(`{"ok":true}`))
	}
	mux.HandleFunc("POST /ws-api/broadcast", func(w http.ResponseWriter, r *http.Request) { send(w, r, "") })
	mux.HandleFunc("POST /ws-api/clients/{id}/send", func(w http.ResponseWriter, r *http.Request) {
		send(w, r, r.PathValue("id"))
	})

	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var ticking chan struct{}
	p.Lifecycle.Append(fx.Hook{
		OnStart: func(start context.Context) error {
			var lc net.ListenConfig
			ln, err := lc.Listen(start, "tcp", p.Config.Addr)
			if err != nil {
				return fmt.Errorf("encrypted: listen: %w", err)
			}
			go func() {
				defer close(done)
				if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
					p.Logger.Error("serve", zap.Error(err))
				}
			}()
			if p.Config.Tick > 0 {
				ticking = make(chan struct{})
				go tick(ctx, ticking, h, p.ECDH, p.Config.Tick)
			}
			p.Logger.Info("listening", zap.String("addr", "http://"+ln.Addr().String()+"/"), zap.Bool("encryption", p.Config.RequireEncryption))
			return nil
		},
		OnStop: func(stop context.Context) error {
			cancel()
			if ticking != nil {
				<-ticking
			}
			err := srv.Shutdown(stop)
			<-done
			return err
		},
	})
}

// tick broadcasts the time and the number of keys held until ctx ends.
func tick(ctx context.Context, done chan<- struct{}, h *helper.WebSocketServerHelper, enc *encryption.ECDH, every time.Duration) {
	defer close(done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			keys := 0
			if enc != nil {
				keys = enc.Len()
			}
			_, _ = h.Broadcast("tick", map[string]any{"time": now.UTC().Format(time.RFC3339), "keys": keys})
		}
	}
}

// Command encrypted is a WebSocket server that requires the Ignis ECDH
// scheme (package encryption), with a browser page that speaks it through
// WebCrypto (ECDH P-256, HKDF-SHA256, AES-256-GCM): open http://HOST:PORT/
// in a browser.
//
// Environment: HOST (127.0.0.1), PORT (3000), WS_PATH (/ws), TICK_MS (2000;
// 0 turns the periodic broadcast off), REQUIRE_ENCRYPTION (1; 0 serves plain
// clients, for comparisons), CPUPROFILE (a file for a CPU profile of the
// whole run). Tokens are those of the demo contract:
// `valid-<userId>`. REST: GET /healthz, POST /ws-api/broadcast
// {"event","data"}, POST /ws-api/clients/{id}/send {"event","data"}.
package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"log"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fxws/websocket/encryption"
	"github.com/fxws/websocket/helper"
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

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	logger, _ := zap.NewProduction()
	if env("QUIET", "") == "1" {
		logger = zap.NewNop()
	}
	defer logger.Sync()
	requireEncryption := env("REQUIRE_ENCRYPTION", "1") == "1"
	if path := env("CPUPROFILE", ""); path != "" { // for load runs
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	enc := encryption.NewECDH(encryption.Options{})

	var h *helper.WebSocketServerHelper
	handlers := helper.Handlers{
		Authenticate: func(_ context.Context, req helper.AuthenticateRequest) (*helper.AuthResult, error) {
			var d struct {
				Token string `json:"token"`
			}
			_ = json.Unmarshal(req.Data, &d)
			if user, ok := strings.CutPrefix(d.Token, "valid-"); ok {
				return &helper.AuthResult{UserID: user}, nil
			}
			return nil, nil
		},
		// With encryption on, the message arrives decrypted.
		Message: func(ctx context.Context, req helper.MessageRequest) error {
			if req.Message.Event == "echo" {
				return h.Send(ctx, req.ClientID, "echo", req.Message.Data)
			}
			if req.Message.Event == "chat" {
				return h.Send(ctx, "", "chat", map[string]any{"from": req.UserID, "data": req.Message.Data})
			}
			return nil
		},
	}
	if requireEncryption {
		handlers = enc.Handlers(handlers)
	}
	var err error
	h, err = helper.New(helper.Config{
		Options:  helper.Options{Path: env("WS_PATH", "/ws"), RequireEncryption: requireEncryption},
		Handlers: handlers,
		Logger:   logger,
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := h.Start(ctx); err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.Handle(h.Path(), h)
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

	if ms, _ := strconv.Atoi(env("TICK_MS", "2000")); ms > 0 {
		go func() {
			t := time.NewTicker(time.Duration(ms) * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case now := <-t.C:
					_, _ = h.Broadcast("tick", map[string]any{"time": now.UTC().Format(time.RFC3339), "keys": enc.Len()})
				}
			}
		}()
	}

	addr := env("HOST", "127.0.0.1") + ":" + env("PORT", "3000")
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	logger.Info("listening", zap.String("addr", "http://"+addr+"/"), zap.Bool("encryption", requireEncryption))
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = errors.Join(h.Shutdown(sctx), srv.Shutdown(sctx))
	return err
}

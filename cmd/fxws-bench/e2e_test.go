package main

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fxws/websocket/encryption"
	"github.com/fxws/websocket/helper"
	"go.uber.org/goleak"
)

// TestMain lets the test binary act as a load process for -procs runs
// (the tool re-executes itself with the "worker" argument).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "worker" {
		if err := runWorkerProcess(); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// testServer is a small server on the core helper with the parts of the demo
// contract the tool uses: authenticate valid-<user>, echo, broadcast, room
// send and server-side join.
func testServer(t *testing.T) (wsURL string) { return testServerOpts(t, false) }

// testServerOpts is testServer, optionally requiring the Ignis ECDH
// encryption (the built-in encryption package).
func testServerOpts(t *testing.T, encrypted bool) (wsURL string) {
	t.Helper()
	var h *helper.WebSocketServerHelper
	handlers := helper.Handlers{
		Authenticate: func(_ context.Context, req helper.AuthenticateRequest) (*helper.AuthResult, error) {
			var d struct{ Token string }
			_ = json.Unmarshal(req.Data, &d)
			if u, ok := strings.CutPrefix(d.Token, "valid-"); ok {
				return &helper.AuthResult{UserID: u}, nil
			}
			return nil, nil
		},
		Message: func(_ context.Context, req helper.MessageRequest) error {
			if req.Message.Event == "echo" {
				_, err := h.SendToClient(req.ClientID, "echo", req.Message.Data)
				return err
			}
			return nil
		},
	}
	if encrypted {
		handlers = encryption.NewECDH(encryption.Options{}).Handlers(handlers)
	}
	h, err := helper.New(helper.Config{
		// Deflate on, and large frames sent compressed: plain clients
		// never offer it, -deflate ones do.
		Options:  helper.Options{RequireEncryption: encrypted, PerMessageDeflate: true, CompressMinSize: 256},
		Handlers: handlers,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", h)
	send := func(w http.ResponseWriter, r *http.Request, dest string) {
		var body struct {
			Event string          `json:"event"`
			Data  json.RawMessage `json:"data"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := h.Send(r.Context(), dest, body.Event, body.Data); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Write([]byte(`{"ok":true}`))
	}
	mux.HandleFunc("POST /ws-api/broadcast", func(w http.ResponseWriter, r *http.Request) { send(w, r, "") })
	mux.HandleFunc("POST /ws-api/rooms/{room}/send", func(w http.ResponseWriter, r *http.Request) { send(w, r, r.PathValue("room")) })
	mux.HandleFunc("POST /ws-api/clients/{id}/rooms/{room}", func(w http.ResponseWriter, r *http.Request) {
		h.JoinRoom(r.PathValue("id"), r.PathValue("room"))
		w.Write([]byte(`{"ok":true}`))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = h.Shutdown(ctx)
		srv.Close()
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
}

func benchConfig(t *testing.T, args ...string) config {
	t.Helper()
	cfg, err := parseConfig(args)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestBroadcastAndRoomsCountEveryMessageOnce(t *testing.T) {
	url := testServer(t)
	pid := itoa(os.Getpid())
	for _, args := range [][]string{
		{"broadcast", "-n", "20", "-rate", "200", "-duration", "300ms"},
		{"rooms", "-n", "30", "-rooms", "3", "-rate", "300", "-duration", "300ms"},
		{"broadcast", "-n", "20", "-rate", "100", "-duration", "300ms", "-procs", "2", "-sources", "2"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			cfg := benchConfig(t, append(args, "-url", url, "-server-pid", pid, "-settle", "50ms", "-drain", "1s")...)
			r, err := run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if r.Connected != cfg.n || r.ConnectFailed != 0 {
				t.Fatalf("connected %d of %d: %v", r.Connected, cfg.n, r.ConnectErrors)
			}
			perClient := r.Published
			if cfg.rooms > 0 {
				perClient = r.Published / int64(cfg.rooms)
			}
			if r.Published == 0 || r.Expected != perClient*int64(cfg.n) || r.Delivered != r.Expected {
				t.Fatalf("published %d, expected %d, delivered %d", r.Published, r.Expected, r.Delivered)
			}
			if r.Missing != 0 || r.Duplicates != 0 || r.Dropped != 0 {
				t.Fatalf("missing %d, duplicates %d, dropped %d", r.Missing, r.Duplicates, r.Dropped)
			}
			if r.LatMax <= 0 || r.CPUPerMsgUs < 0 {
				t.Fatalf("no latency recorded: %+v", r)
			}
		})
	}
}

// -deflate with large text-padded broadcasts: the server sends them
// compressed, and every one is inflated and counted once.
func TestBroadcastToCompressedClients(t *testing.T) {
	url := testServer(t)
	r, err := run(context.Background(), benchConfig(t, "broadcast", "-url", url, "-n", "10", "-rate", "100",
		"-duration", "300ms", "-settle", "10ms", "-drain", "1s", "-size", "2000", "-text-pad", "-deflate"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Connected != 10 || r.Published == 0 || r.Delivered != r.Published*10 || r.Missing != 0 || r.Duplicates != 0 {
		t.Fatalf("compressed delivery: %+v", r)
	}
}

func TestTextPaddingCompressesLikeJSON(t *testing.T) {
	p := textPadding(4000)
	if len(p) != 4000 || strings.ContainsAny(p, `"\`) {
		t.Fatalf("padding of %d bytes, or not safe inside a JSON string", len(p))
	}
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestSpeed)
	_, _ = w.Write([]byte(p))
	_ = w.Close()
	if r := float64(len(p)) / float64(b.Len()); r < 1.5 || r > 6 {
		t.Fatalf("text padding compresses %.1f×; want about what JSON does (2–4×)", r)
	}
}

func TestEncryptedClientsDecryptEveryMessage(t *testing.T) {
	url := testServerOpts(t, true)
	r, err := run(context.Background(), benchConfig(t, "encrypted", "-url", url, "-n", "10", "-rate", "100",
		"-duration", "300ms", "-settle", "10ms", "-drain", "1s"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Connected != 10 || r.Published == 0 || r.Delivered != r.Published*10 || r.Missing != 0 {
		t.Fatalf("encrypted delivery: %+v", r)
	}
	if r.DecryptErrors != 0 || r.OpaqueClients != 0 {
		t.Fatalf("clients could not decrypt: %d errors, %d opaque", r.DecryptErrors, r.OpaqueClients)
	}
}

func TestEchoCountsRoundTrips(t *testing.T) {
	url := testServer(t)
	r, err := run(context.Background(), benchConfig(t, "echo", "-url", url, "-n", "5", "-duration", "300ms", "-settle", "10ms"))
	if err != nil {
		t.Fatal(err)
	}
	if r.RoundTrips == 0 || r.LatP50 <= 0 {
		t.Fatalf("no round trips: %+v", r)
	}
}

// -deflate: every client negotiates permessage-deflate and its compressed
// echoes come back.
func TestEchoWithCompressedClients(t *testing.T) {
	url := testServer(t)
	r, err := run(context.Background(), benchConfig(t, "echo", "-url", url, "-n", "5", "-duration", "300ms", "-settle", "10ms", "-deflate"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Connected != 5 || r.RoundTrips == 0 {
		t.Fatalf("compressed echo: %+v", r)
	}
}

func TestConnsReportsFailuresAndServerMemory(t *testing.T) {
	url := testServer(t)
	r, err := run(context.Background(), benchConfig(t, "conns", "-url", url, "-n", "10", "-hold", "100ms", "-server-pid", itoa(os.Getpid())))
	if err != nil {
		t.Fatal(err)
	}
	if r.Connected != 10 || r.LiveAtEnd != 10 || r.RSSAfter <= 0 {
		t.Fatalf("unexpected conns result: %+v", r)
	}
	// Connected in two halves, memory sampled between them.
	if r.MarginalConns != 5 || r.RSSMid <= 0 {
		t.Fatalf("no marginal figure: %+v", r)
	}
	// A wrong path: every client fails with a clear, counted error.
	bad := strings.TrimSuffix(url, "/ws") + "/nope"
	r, err = run(context.Background(), benchConfig(t, "conns", "-url", bad, "-n", "3", "-hold", "10ms"))
	if err == nil || r.ConnectFailed != 3 || len(r.ConnectErrors) == 0 {
		t.Fatalf("bad path: err %v, result %+v", err, r)
	}
}

func TestParseConfigRejectsBadInput(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"nope"},
		{"broadcast", "-via", "carrier-pigeon"},
		{"broadcast", "-via", "redis"},
		{"cross", "-url", "ws://127.0.0.1:1/ws"},
		{"conns", "-n", "40000", "-procs", "1"},
		{"conns", "-server-pid", "abc"},
	} {
		if _, err := parseConfig(args); err == nil {
			t.Errorf("parseConfig(%q) accepted bad input", args)
		}
	}
	cfg := benchConfig(t, "conns", "-n", "45000")
	if cfg.procs != 3 || cfg.sources != 3 {
		t.Errorf("45000 clients: procs %d sources %d, want 3 and 3", cfg.procs, cfg.sources)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

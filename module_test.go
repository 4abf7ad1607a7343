package websocket_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	websocket "github.com/fxws/websocket"
	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/component"
	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/protocol"
	"github.com/gobwas/ws"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// auth accepts {"token":"valid-<user>"}.
func auth(_ context.Context, r helper.AuthenticateRequest) (*helper.AuthResult, error) {
	var d struct{ Token string }
	_ = json.Unmarshal(r.Data, &d)
	user, ok := strings.CutPrefix(d.Token, "valid-")
	if !ok {
		return nil, nil
	}
	return &helper.AuthResult{UserID: user, Metadata: map[string]any{"role": "tester"}}, nil
}

func token(user string) map[string]string { return map[string]string{"token": "valid-" + user} }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestBindingKeysMatchComponentTags(t *testing.T) {
	want := map[string]string{
		"Options":             websocket.ServerOptionsKey,
		"Redis":               websocket.RedisConnectionKey,
		"Authenticate":        websocket.AuthenticateHandlerKey,
		"ValidateRoom":        websocket.ValidateRoomHandlerKey,
		"ClientConnected":     websocket.ClientConnectedHandlerKey,
		"ClientDisconnected":  websocket.ClientDisconnectedHandlerKey,
		"RoomsChanged":        websocket.RoomsChangedHandlerKey,
		"Message":             websocket.MessageHandlerKey,
		"OutboundTransformer": websocket.OutboundTransformerKey,
		"Handshake":           websocket.HandshakeHandlerKey,
		"InboundTransformer":  websocket.InboundTransformerKey,
		"BrokerRestored":      websocket.BrokerRestoredHandlerKey,
		"Mux":                 websocket.HTTPMuxKey,
		"Listener":            websocket.ListenerKey,
		"Broker":              websocket.BrokerKey,
		"Logger":              websocket.LoggerKey,
	}
	typ := reflect.TypeFor[component.Params]()
	named := 0
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, ok := f.Tag.Lookup("name")
		if !ok {
			continue
		}
		named++
		key, ok := want[f.Name]
		if !ok {
			t.Errorf("component.Params.%s has name %q but no exported key", f.Name, name)
			continue
		}
		if got := reflect.StructTag(key).Get("name"); got != name {
			t.Errorf("component.Params.%s: tag name %q, exported key %s", f.Name, name, key)
		}
		optional := f.Tag.Get("optional") == "true"
		if optional == (f.Name == "Authenticate") {
			t.Errorf("component.Params.%s: optional=%v, want only Authenticate required", f.Name, optional)
		}
	}
	if named != len(want) {
		t.Errorf("component.Params has %d named fields, want %d", named, len(want))
	}
}

func TestValidateAppMissingAuthenticate(t *testing.T) {
	err := fx.ValidateApp(websocket.Module)
	if err == nil || !strings.Contains(err.Error(), "@app/websocket/authenticate-handler") {
		t.Fatalf("ValidateApp without an authenticate handler: %v", err)
	}
	app := fx.New(fx.NopLogger, websocket.Module)
	if err := app.Err(); err == nil || !strings.Contains(err.Error(), "@app/websocket/authenticate-handler") {
		t.Fatalf("fx.New without an authenticate handler: %v", err)
	}
	// Provided under no name: the error still names the key to use.
	app = fx.New(fx.NopLogger, websocket.Module, fx.Supply(helper.AuthenticateFunc(auth)))
	if err := app.Err(); err == nil || !strings.Contains(err.Error(), "@app/websocket/authenticate-handler") {
		t.Fatalf("fx.New with an unnamed authenticate handler: %v", err)
	}
}

func TestValidateAppOnlyRequired(t *testing.T) {
	if err := fx.ValidateApp(websocket.Module, websocket.WithAuthenticate(auth)); err != nil {
		t.Fatal(err)
	}
}

// everyBinding binds every optional value the module consumes, besides the
// serving ones (mux, listener) which exclude each other.
func everyBinding() fx.Option {
	return fx.Options(
		websocket.WithServerOptions(websocket.ServerOptions{Addr: "127.0.0.1:0"}),
		websocket.WithAuthenticate(auth),
		websocket.WithValidateRoom(func(context.Context, helper.ValidateRoomRequest) ([]string, error) { return nil, nil }),
		websocket.WithClientConnected(func(context.Context, helper.ClientInfo) error { return nil }),
		websocket.WithClientDisconnected(func(context.Context, helper.ClientInfo) error { return nil }),
		websocket.WithRoomsChanged(func(context.Context, helper.RoomsChangedRequest) error { return nil }),
		websocket.WithMessageHandler(func(context.Context, helper.MessageRequest) error { return nil }),
		websocket.WithOutboundTransformer(func(context.Context, helper.OutboundRequest) (*protocol.Message, error) { return nil, nil }),
		websocket.WithHandshake(func(context.Context, helper.HandshakeRequest) (*helper.HandshakeResult, error) { return nil, nil }),
		websocket.WithInboundTransformer(func(_ context.Context, r helper.InboundRequest) (protocol.Message, error) { return r.Message, nil }),
		websocket.WithBroker(broker.NewMemory()),
		websocket.WithLogger(zap.NewNop()),
		fx.Supply(zap.NewNop()),
	)
}

func TestValidateAppEveryBinding(t *testing.T) {
	if err := fx.ValidateApp(websocket.Module, everyBinding(), websocket.WithHTTPMux(http.NewServeMux())); err != nil {
		t.Fatal(err)
	}
	if err := fx.ValidateApp(websocket.Module, everyBinding()); err != nil {
		t.Fatal(err)
	}
	// fx.New runs the constructor too: every binding is accepted together.
	app := fx.New(fx.NopLogger, websocket.Module, everyBinding())
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestInvalidBindingsFailNew(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	cases := []struct {
		name string
		opts []fx.Option
		want []string
	}{
		{"negative option", []fx.Option{websocket.WithServerOptions(websocket.ServerOptions{Options: helper.Options{AuthTimeout: -1}})},
			[]string{"@app/websocket/server-options", "AuthTimeout"}},
		{"bad path", []fx.Option{websocket.WithServerOptions(websocket.ServerOptions{Options: helper.Options{Path: "ws"}})},
			[]string{"@app/websocket/server-options", "Path"}},
		{"bad addr", []fx.Option{websocket.WithServerOptions(websocket.ServerOptions{Addr: "nonsense"})},
			[]string{"@app/websocket/server-options", "Addr"}},
		{"encryption without handshake", []fx.Option{websocket.WithServerOptions(websocket.ServerOptions{Options: helper.Options{RequireEncryption: true}})},
			[]string{"RequireEncryption", "@app/websocket/handshake-handler"}},
		{"redis and broker", []fx.Option{websocket.WithRedisConnection(rdb), websocket.WithBroker(broker.NewMemory())},
			[]string{"@app/websocket/redis-connection", "@app/websocket/broker"}},
		{"nil authenticate", []fx.Option{fx.Provide(fx.Annotate(func() helper.AuthenticateFunc { return nil }, fx.ResultTags(websocket.AuthenticateHandlerKey)))},
			[]string{"no authenticate handler", "@app/websocket/authenticate-handler"}},
		// A typed nil inside the interface: not nil to a comparison, a
		// panic in the start hook's ping before.
		{"nil redis client inside the interface", []fx.Option{fx.Provide(fx.Annotate(func() redis.UniversalClient { return (*redis.Client)(nil) }, fx.ResultTags(websocket.RedisConnectionKey)))},
			[]string{"@app/websocket/redis-connection", "nil *redis.Client"}},
		{"nil redis client through the helper", []fx.Option{websocket.WithRedisConnection((*redis.Client)(nil))},
			[]string{"@app/websocket/redis-connection", "nil"}},
		{"nil mux", []fx.Option{websocket.WithHTTPMux(nil)},
			[]string{"@app/websocket/http-mux", "nil *http.ServeMux"}},
		{"nil redis interface", []fx.Option{websocket.WithRedisConnection(nil)},
			[]string{"@app/websocket/redis-connection", "nil redis.UniversalClient"}},
		{"nil broker", []fx.Option{websocket.WithBroker(nil)},
			[]string{"@app/websocket/broker", "nil broker.Broker"}},
		{"options without the name", []fx.Option{fx.Supply(websocket.ServerOptions{Options: helper.Options{Path: "/realtime"}})},
			[]string{"without the name", "@app/websocket/server-options", "WithServerOptions"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := append([]fx.Option{fx.NopLogger, websocket.Module}, tc.opts...)
			if tc.name != "nil authenticate" {
				opts = append(opts, websocket.WithAuthenticate(auth))
			}
			err := fx.New(opts...).Err()
			if err == nil {
				t.Fatal("fx.New succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestMuxConflictFailsNew(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(http.ResponseWriter, *http.Request) {})
	err := fx.New(fx.NopLogger, websocket.Module, websocket.WithAuthenticate(auth), websocket.WithHTTPMux(mux)).Err()
	if err == nil || !strings.Contains(err.Error(), "@app/websocket/http-mux") {
		t.Fatalf("mounting on a mux that already has /ws: %v", err)
	}
}

// TestOnlyRequired runs the module with nothing but the authenticate
// handler: defaults everywhere, no optional callback.
func TestOnlyRequired(t *testing.T) {
	srv := fxtest.StartServer(t, websocket.WithAuthenticate(auth))
	ctx := ctxT(t)
	if !strings.HasSuffix(srv.URL(), "/ws") {
		t.Errorf("URL %s: want the default path /ws", srv.URL())
	}
	c, id := srv.Connect(t, token("u1"))
	// No validate-room handler: client joins are refused, silently.
	if err := c.Join("public-a"); err != nil {
		t.Fatal(err)
	}
	// No message handler: application events are dropped.
	if err := c.Emit("anything", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	if err := c.Heartbeat(); err != nil {
		t.Fatal(err)
	}
	// A barrier: the client's messages are handled in order, so once the
	// answer to "not json" is in, the join, the event and the heartbeat
	// have been handled. (ConnectionsTotal was 1 from the login on, so
	// waiting for it proved nothing.)
	if err := c.SendText("not json"); err != nil {
		t.Fatal(err)
	}
	if text, err := c.ExpectError(ctx); err != nil || text != protocol.ErrTextInvalidFormat {
		t.Fatalf("barrier: error %q, %v; want %q", text, err, protocol.ErrTextInvalidFormat)
	}
	view, ok := srv.Helper().GetClient(id)
	if !ok {
		t.Fatal("client unknown to the helper")
	}
	want := []string{id, "ws-default", "ws-notification"}
	slices.Sort(want)
	if !slices.Equal(view.Rooms, want) {
		t.Errorf("rooms %v, want %v", view.Rooms, want)
	}
	// Default rooms work end to end.
	if _, err := srv.Helper().SendToRoom("ws-notification", "note", "hi"); err != nil {
		t.Fatal(err)
	}
	m, err := c.Expect(ctx, "note")
	if err != nil || string(m.Data) != `"hi"` {
		t.Fatalf("note: %v %s", err, m.Data)
	}
	// A bad token is refused with 4003.
	bad := srv.Dial(t)
	if _, err := bad.Authenticate(ctx, map[string]string{"token": "nope"}); err == nil {
		t.Fatal("bad token accepted")
	}
	if code, _, _ := bad.ExpectClose(ctx); code != protocol.CloseAuthFailed {
		t.Errorf("close %d, want 4003", code)
	}
}

func TestEveryHandlerIsWired(t *testing.T) {
	var mu sync.Mutex
	var events []string
	record := func(s string) {
		mu.Lock()
		events = append(events, s)
		mu.Unlock()
	}
	recorded := func(s string) bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(events, s)
	}
	srv := fxtest.StartServer(t,
		websocket.WithAuthenticate(auth),
		websocket.WithValidateRoom(func(_ context.Context, r helper.ValidateRoomRequest) ([]string, error) {
			record("validate:" + strings.Join(r.Rooms, ","))
			return slices.DeleteFunc(r.Rooms, func(s string) bool { return !strings.HasPrefix(s, "public-") }), nil
		}),
		websocket.WithClientConnected(func(_ context.Context, i helper.ClientInfo) error {
			record("connected:" + i.UserID)
			return nil
		}),
		websocket.WithClientDisconnected(func(_ context.Context, i helper.ClientInfo) error {
			record("disconnected:" + i.UserID)
			return nil
		}),
		websocket.WithMessageHandler(func(_ context.Context, r helper.MessageRequest) error {
			record("message:" + r.UserID + ":" + r.Message.Event)
			return nil
		}),
	)
	ctx := ctxT(t)
	c, id := srv.Connect(t, token("ann"))
	waitFor(t, func() bool { return recorded("connected:ann") })
	if err := c.Join("public-a", "private-b"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return recorded("validate:public-a,private-b") })
	waitFor(t, func() bool { v, _ := srv.Helper().GetClient(id); return slices.Contains(v.Rooms, "public-a") })
	if v, _ := srv.Helper().GetClient(id); slices.Contains(v.Rooms, "private-b") {
		t.Error("joined a room the handler refused")
	}
	if err := c.Emit("hello", 1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return recorded("message:ann:hello") })
	if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Log(err)
	}
	waitFor(t, func() bool { return recorded("disconnected:ann") })
	_ = ctx
}

// TestEncryptionBindings: the handshake and outbound transformer bindings
// reach the helper (a toy transformer; the real scheme is the encryption
// package's).
func TestEncryptionBindings(t *testing.T) {
	srv := fxtest.StartServer(t,
		websocket.WithServerOptions(websocket.ServerOptions{Options: helper.Options{RequireEncryption: true}}),
		websocket.WithAuthenticate(auth),
		websocket.WithHandshake(func(_ context.Context, r helper.HandshakeRequest) (*helper.HandshakeResult, error) {
			var d struct{ PublicKey string }
			_ = json.Unmarshal(r.Data, &d)
			if d.PublicKey == "" {
				return nil, nil
			}
			return &helper.HandshakeResult{ServerPublicKey: "srv-" + d.PublicKey, Salt: "salt"}, nil
		}),
		websocket.WithOutboundTransformer(func(_ context.Context, r helper.OutboundRequest) (*protocol.Message, error) {
			return &protocol.Message{Event: "wrapped", Data: json.RawMessage(`{"event":"` + r.Event + `"}`)}, nil
		}),
	)
	ctx := ctxT(t)
	c := srv.Dial(t)
	cd, err := c.Authenticate(ctx, map[string]string{"token": "valid-e", "publicKey": "pk"})
	if err != nil {
		t.Fatal(err)
	}
	if cd.ServerPublicKey != "srv-pk" || cd.Salt != "salt" {
		t.Fatalf("connected data %+v", cd)
	}
	if _, err := srv.Helper().SendToClient(cd.ID, "secret", 1); err != nil {
		t.Fatal(err)
	}
	if m, err := c.Expect(ctx, "wrapped"); err != nil || string(m.Data) != `{"event":"secret"}` {
		t.Fatalf("transformed message: %v %s", err, m.Data)
	}
	// No key: the handshake refuses, 4004.
	c2 := srv.Dial(t)
	if _, err := c2.Authenticate(ctx, token("f")); err == nil {
		t.Fatal("handshake without a key accepted")
	}
	if code, _, _ := c2.ExpectClose(ctx); code != protocol.CloseEncryptionRequired {
		t.Errorf("close %d, want 4004", code)
	}
}

func TestCustomOptions(t *testing.T) {
	srv := fxtest.StartServer(t,
		websocket.WithAuthenticate(auth),
		websocket.WithServerOptions(websocket.ServerOptions{Options: helper.Options{
			Path:             "/realtime",
			DefaultRooms:     []string{"lobby"},
			AuthTimeout:      150 * time.Millisecond,
			MaxPayloadLength: 1024,
			Identifier:       "custom",
		}}),
	)
	ctx := ctxT(t)
	if !strings.HasSuffix(srv.URL(), "/realtime") {
		t.Fatalf("URL %s", srv.URL())
	}
	// Other paths are not the WebSocket endpoint.
	if _, err := fxtest.Dial(ctx, "ws://"+srv.Addr()+"/ws"); err == nil {
		t.Error("dialed the default path of a server configured elsewhere")
	}
	c, id := srv.Connect(t, token("o"))
	if v, _ := srv.Helper().GetClient(id); !slices.Equal(v.Rooms, sorted(id, "lobby")) {
		t.Errorf("rooms %v, want own id and lobby", v.Rooms)
	}
	// MaxPayloadLength applies.
	if err := c.SendText(`{"event":"big","data":"` + strings.Repeat("x", 2048) + `"}`); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := c.ExpectClose(ctx); code != ws.StatusMessageTooBig {
		t.Errorf("close %d, want 1009", code)
	}
	// AuthTimeout applies.
	idle := srv.Dial(t)
	if code, reason, _ := idle.ExpectClose(ctx); code != protocol.CloseAuthTimeout {
		t.Errorf("close %d %q, want 4001", code, reason)
	}
}

func sorted(s ...string) []string { slices.Sort(s); return s }

// TestMuxMounting: with an app mux the module mounts itself at the path and
// does not listen; the app's other routes keep working.
func TestMuxMounting(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	app, hs, logs := newMuxApp(t, mux)
	ctx := ctxT(t)
	// Mounted before start: not accepting yet.
	if resp, err := http.Get(hs.URL + "/ws"); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("before start: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := fxtest.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Authenticate(ctx, token("m")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(hs.URL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("app route: %v %v", err, resp)
	}
	resp.Body.Close()
	if logs.FilterMessage("websocket server listening").Len() != 0 {
		t.Error("the module listened although a mux was bound")
	}
	if logs.FilterMessage("websocket handler mounted on the app's HTTP mux").Len() != 1 {
		t.Error("no mount log")
	}
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if code, reason, _ := c.ExpectClose(ctx); code != ws.StatusGoingAway || reason != protocol.ReasonShuttingDown {
		t.Errorf("close %d %q, want 1001", code, reason)
	}
	hs.CloseClientConnections()
	http.DefaultClient.CloseIdleConnections()
}

// TestOwnListener: without mux or listener the module binds Addr itself,
// and a bind error comes out of Start.
func TestOwnListener(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	var h *helper.WebSocketServerHelper
	app := fx.New(fx.NopLogger, websocket.Module,
		websocket.WithAuthenticate(auth),
		websocket.WithServerOptions(websocket.ServerOptions{Addr: "127.0.0.1:0"}),
		fx.Supply(zap.New(core)), // the app's logger, unnamed
		fx.Populate(&h),
	)
	ctx := ctxT(t)
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	entries := logs.FilterMessage("websocket server listening").All()
	if len(entries) != 1 {
		t.Fatalf("listening logs: %v", entries)
	}
	if entries[0].LoggerName != "websocket" {
		t.Errorf("logger name %q, want the app's logger scoped to websocket", entries[0].LoggerName)
	}
	addr := entries[0].ContextMap()["addr"].(string)
	c, err := fxtest.Dial(ctx, "ws://"+addr+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Authenticate(ctx, token("l")); err != nil {
		t.Fatal(err)
	}
	// The in-process broker is announced as single-instance.
	if logs.FilterMessageSnippet("single instance").Len() != 1 {
		t.Error("no single-instance warning without Redis")
	}

	// A second app on the same address fails to start, with the bind error.
	app2 := fx.New(fx.NopLogger, websocket.Module,
		websocket.WithAuthenticate(auth),
		websocket.WithServerOptions(websocket.ServerOptions{Addr: addr}),
	)
	err = app2.Start(ctx)
	if err == nil || !strings.Contains(err.Error(), "listen on "+addr) {
		t.Fatalf("second app on %s: %v", addr, err)
	}

	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := c.ExpectClose(ctx); code != ws.StatusGoingAway {
		t.Errorf("close %d, want 1001", code)
	}
	// The port is free again once stopped.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("port still bound after stop: %v", err)
	}
	ln.Close()
}

// notifier is an ordinary service that takes the helper in its constructor.
type notifier struct{ ws *helper.WebSocketServerHelper }

func newNotifier(ws *helper.WebSocketServerHelper) *notifier { return &notifier{ws: ws} }

func (n *notifier) notify(ctx context.Context, room, text string) error {
	return n.ws.Send(ctx, room, "notice", map[string]string{"text": text})
}

func TestHelperInjectedIntoService(t *testing.T) {
	var n *notifier
	srv := fxtest.StartServer(t,
		websocket.WithAuthenticate(auth),
		fx.Provide(newNotifier),
		fx.Populate(&n),
	)
	ctx := ctxT(t)
	c, _ := srv.Connect(t, token("s"))
	if err := n.notify(ctx, "ws-default", "hello"); err != nil {
		t.Fatal(err)
	}
	if m, err := c.Expect(ctx, "notice"); err != nil || string(m.Data) != `{"text":"hello"}` {
		t.Fatalf("notice: %v %s", err, m.Data)
	}
}

// TestHelperRef: a handler whose constructor takes *websocket.HelperRef can
// send through the helper it is part of.
func TestHelperRef(t *testing.T) {
	newEcho := func(ref *websocket.HelperRef) helper.MessageFunc {
		return func(ctx context.Context, r helper.MessageRequest) error {
			return ref.Helper().Send(ctx, r.ClientID, "echo", r.Message.Data)
		}
	}
	srv := fxtest.StartServer(t,
		websocket.WithAuthenticate(auth),
		fx.Provide(fx.Annotate(newEcho, fx.ResultTags(websocket.MessageHandlerKey))),
	)
	ctx := ctxT(t)
	c, _ := srv.Connect(t, token("r"))
	if err := c.Emit("say", map[string]int{"n": 7}); err != nil {
		t.Fatal(err)
	}
	if m, err := c.Expect(ctx, "echo"); err != nil || string(m.Data) != `{"n":7}` {
		t.Fatalf("echo: %v %s", err, m.Data)
	}
}

// TestBrokerBinding: two apps on one MemoryHub are two instances.
func TestBrokerBinding(t *testing.T) {
	servers := fxtest.StartCluster(t, 2, "", websocket.WithAuthenticate(auth))
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
	// A client of the other instance, by id.
	if err := servers[0].Helper().Send(ctx, bID, "direct", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Expect(ctx, "direct"); err != nil {
		t.Fatal(err)
	}
	// A user on the other instance.
	if err := servers[0].Helper().SendToUser(ctx, "b", "user", 3); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Expect(ctx, "user"); err != nil {
		t.Fatal(err)
	}
}

// TestStartStopTwice runs a full app twice in one process; goleak (in
// TestMain and here) checks that nothing is left running.
func TestStartStopTwice(t *testing.T) {
	for i := range 2 {
		srv, err := fxtest.Start(websocket.WithAuthenticate(auth))
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		ctx := ctxT(t)
		c, err := fxtest.Dial(ctx, srv.URL())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Authenticate(ctx, token("x")); err != nil {
			t.Fatal(err)
		}
		unauth, err := fxtest.Dial(ctx, srv.URL())
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Stop(); err != nil {
			t.Fatalf("run %d stop: %v", i, err)
		}
		for _, cl := range []*fxtest.Client{c, unauth} {
			if code, reason, _ := cl.ExpectClose(ctx); code != ws.StatusGoingAway || reason != protocol.ReasonShuttingDown {
				t.Errorf("run %d: close %d %q, want 1001", i, code, reason)
			}
		}
		if err := srv.Stop(); err != nil {
			t.Errorf("second Stop: %v", err)
		}
	}
	goleak.VerifyNone(t)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A stop that callbacks outlast says why in the log: fx itself reports only
// the stop context's "deadline exceeded" for a hook that returns as it ends.
func TestIncompleteStopIsLogged(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	app, hs, logs := newMuxApp(t, http.NewServeMux(),
		websocket.WithClientDisconnected(func(context.Context, helper.ClientInfo) error {
			<-release
			return nil
		}))
	ctx := ctxT(t)
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := fxtest.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Abort() }()
	if _, err := c.Authenticate(ctx, token("s")); err != nil {
		t.Fatal(err)
	}
	stopCtx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	err = app.Stop(stopCtx)
	if err == nil {
		t.Fatal("stop succeeded while a disconnect callback blocked")
	}
	// The hook ends before fx gives up on it, so the cause reaches the
	// app, not only "deadline exceeded".
	if !strings.Contains(err.Error(), "1 of them disconnect callbacks") || strings.Contains(err.Error(), "connections did not close") {
		t.Errorf("Stop's error %q does not name the disconnect callback (or blames the connections)", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for logs.FilterMessage("websocket stop incomplete").Len() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no log line says why the stop was incomplete")
		}
		time.Sleep(10 * time.Millisecond)
	}
	entry := logs.FilterMessage("websocket stop incomplete").All()[0]
	// The callback runs on the client's read loop or, for a parked
	// connection, as a task: which one is a matter of timing, and both
	// errors name it the same way.
	if msg := entry.ContextMap()["error"]; !strings.Contains(fmt.Sprint(msg), "callbacks still running") {
		t.Fatalf("logged error %q does not name the callbacks", msg)
	}
	hs.CloseClientConnections()
}

// newMuxApp builds (does not start) the module mounted on mux, logging to
// the returned observer, with mux served by an httptest server closed at
// cleanup.
func newMuxApp(t *testing.T, mux *http.ServeMux, extra ...fx.Option) (*fx.App, *httptest.Server, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.InfoLevel)
	app := fx.New(append([]fx.Option{fx.NopLogger, websocket.Module,
		websocket.WithAuthenticate(auth),
		websocket.WithHTTPMux(mux),
		websocket.WithLogger(zap.New(core)),
	}, extra...)...)
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return app, hs, logs
}

package helper_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/protocol"
	"github.com/google/uuid"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// Spec "Connection lifecycle" 1: upgrade on the path, UUID id, unauthorized.
func TestUpgradeRegistersUnauthorizedClient(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, func(c *helper.Config) { c.Options.Path = "/realtime" })
		if !strings.HasSuffix(k.url, "/realtime") {
			t.Fatalf("url %s", k.url)
		}
		resp, err := http.Get(k.srv.URL + "/ws")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("other path: status %d, want 404", resp.StatusCode)
		}
		c := k.dial()
		id := k.unauthorizedID()
		if _, err := uuid.Parse(id); err != nil {
			t.Fatalf("client id %q is not a UUID: %v", id, err)
		}
		v, ok := k.h.GetClient(id)
		if !ok || v.State != protocol.StateUnauthorized || v.UserID != "" || len(v.Rooms) != 0 {
			t.Fatalf("new client view = %+v", v)
		}
		cd, err := c.Authenticate(context.Background(), map[string]any{"token": "valid-u1"})
		if err != nil {
			t.Fatal(err)
		}
		if cd.ID != id {
			t.Fatalf("connected id %q, registered %q", cd.ID, id)
		}
	})
}

func TestNotAcceptingBeforeStartOrAfterShutdown(t *testing.T) {
	h, err := helper.New(helper.Config{Handlers: helper.Handlers{Authenticate: tokenAuth}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptestServer(t, h)
	get := func() int {
		req, _ := http.NewRequest(http.MethodGet, srv+"/ws", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := get(); s != http.StatusServiceUnavailable {
		t.Fatalf("before Start: %d, want 503", s)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err == nil {
		t.Fatal("second Start succeeded")
	}
	if err := h.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := get(); s != http.StatusServiceUnavailable {
		t.Fatalf("after Shutdown: %d, want 503", s)
	}
	if err := h.Start(context.Background()); err == nil {
		t.Fatal("Start after Shutdown succeeded")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	if _, err := helper.New(helper.Config{}); err == nil {
		t.Fatal("no authenticate handler accepted")
	}
	if _, err := helper.New(helper.Config{
		Options:  helper.Options{RequireEncryption: true},
		Handlers: helper.Handlers{Authenticate: tokenAuth},
	}); err == nil {
		t.Fatal("RequireEncryption without handshake accepted")
	}
	for _, o := range []helper.Options{
		{AuthTimeout: -1}, {MaxPayloadLength: -1}, {Path: "ws"}, {DefaultRooms: []string{"ws:x"}},
		{DefaultRooms: []string{""}}, {BackpressureLimit: -1},
	} {
		if _, err := helper.New(helper.Config{Options: o, Handlers: helper.Handlers{Authenticate: tokenAuth}}); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
}

// Spec 1: still unauthorized when the auth timer fires → 4001.
func TestAuthTimeout(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, func(c *helper.Config) { c.Options.AuthTimeout = 100 * time.Millisecond })
		c := k.dial()
		expectClose(t, c, protocol.CloseAuthTimeout, protocol.ReasonAuthTimeout)
		k.rec.waitFor(t, "disconnect callback", func() bool { return len(k.rec.disconnected) == 1 })
		id := k.rec.disconnectedIDs()[0]
		k.rec.mu.Lock()
		authenticated := len(k.rec.connected)
		k.rec.mu.Unlock()
		if authenticated != 0 || id == "" {
			t.Fatalf("disconnected %q after %d authentications, want one client that never authenticated", id, authenticated)
		}
		if _, ok := k.h.GetClient(id); ok {
			t.Fatal("client still registered")
		}
	})
}

// Spec 2: once authenticating, the timer is 3× authTimeout: an authenticate
// callback slower than authTimeout (but within 3×) still succeeds, one that
// never ends is cut with 4001 and its context is cancelled.
func TestAuthInProgressTimer(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		// Margins of half a second either way, for a loaded machine.
		const at = 500 * time.Millisecond
		k := newKit(t, tr, func(c *helper.Config) { c.Options.AuthTimeout = at })

		slow := k.dial()
		start := time.Now()
		cd, err := slow.Authenticate(context.Background(), map[string]any{"token": "slow-750ms"})
		if err != nil {
			t.Fatalf("slow authentication (1.5× authTimeout) failed: %v", err)
		}
		if cd.UserID != "slow" {
			t.Fatalf("connected %+v", cd)
		}
		t.Logf("slow authentication took %v (authTimeout %v)", time.Since(start), at)

		stuck := k.dial()
		if err := stuck.Emit(protocol.EventAuthenticate, map[string]any{"token": "block"}); err != nil {
			t.Fatal(err)
		}
		expectClose(t, stuck, protocol.CloseAuthTimeout, protocol.ReasonAuthTimeout)
		k.rec.waitFor(t, "stuck client disconnected", func() bool { return len(k.rec.disconnected) == 1 })
		if n := len(k.rec.connected); n != 1 {
			t.Fatalf("%d connected callbacks, want 1 (the slow client)", n)
		}
	})
}

// Spec 2: authenticate when not unauthorized → "Already authenticated",
// the connection stays; also while authenticating.
func TestAlreadyAuthenticated(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, nil)
		c, _ := k.login("u1")
		if err := c.Emit(protocol.EventAuthenticate, map[string]any{"token": "valid-u2"}); err != nil {
			t.Fatal(err)
		}
		expectError(t, c, protocol.ErrTextAlreadyAuthenticated)
		if _, err := k.h.Broadcast("still-here", 1); err != nil {
			t.Fatal(err)
		}
		expectEvent(t, c, "still-here")

		// Second authenticate while the first is still running.
		c2 := k.dial()
		_ = c2.Emit(protocol.EventAuthenticate, map[string]any{"token": "slow-200ms"})
		_ = c2.Emit(protocol.EventAuthenticate, map[string]any{"token": "valid-u3"})
		expectError(t, c2, protocol.ErrTextAlreadyAuthenticated)
		m := expectEvent(t, c2, protocol.EventConnected)
		var cd protocol.ConnectedData
		_ = json.Unmarshal(m.Data, &cd)
		if cd.UserID != "slow" {
			t.Fatalf("the second authenticate won: %+v", cd)
		}
	})
}

// Spec 3: reject / error / panic.
func TestAuthenticationFailures(t *testing.T) {
	cases := []struct{ token, text string }{
		{"nope", protocol.ErrTextAuthFailed},
		{"error", protocol.ErrTextAuthError},
		{"panic", protocol.ErrTextAuthError},
	}
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, nil)
		watcher, _ := k.login("watcher")
		for _, tc := range cases {
			c := k.dial()
			if err := c.Emit(protocol.EventAuthenticate, map[string]any{"token": tc.token}); err != nil {
				t.Fatal(err)
			}
			expectError(t, c, tc.text)
			expectClose(t, c, protocol.CloseAuthFailed, protocol.ReasonAuthFailed)
		}
		k.rec.waitFor(t, "three disconnects", func() bool { return len(k.rec.disconnected) == 3 })
		// Nobody else was disturbed.
		_, _ = k.h.Broadcast("ok", 1)
		expectEvent(t, watcher, "ok")
		if s := k.h.Stats(); s.Clients != 1 || s.Authenticated != 1 {
			t.Fatalf("stats %+v", s)
		}
	})
}

// Spec 3: the callback gets data, or {} when absent or null; wrong types are
// passed as they are and cannot crash anything.
func TestAuthenticateData(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, nil)
		for _, raw := range []string{
			`{"event":"authenticate"}`,
			`{"event":"authenticate","data":null}`,
			`{"event":"authenticate","data":42}`,
			`{"event":"authenticate","data":"tok"}`,
			`{"event":"authenticate","data":[1,2]}`,
			`{"event":"authenticate","data":{"token":7}}`,
		} {
			c := k.dial()
			if err := c.SendText(raw); err != nil {
				t.Fatal(err)
			}
			expectError(t, c, protocol.ErrTextAuthFailed)
			expectClose(t, c, protocol.CloseAuthFailed, protocol.ReasonAuthFailed)
		}
		k.rec.mu.Lock()
		got := slices.Clone(k.rec.authData)
		k.rec.mu.Unlock()
		want := []string{`{}`, `{}`, `42`, `"tok"`, `[1,2]`, `{"token":7}`}
		if !slices.Equal(got, want) {
			t.Fatalf("authenticate data %q, want %q", got, want)
		}
	})
}

// Spec 3: if the client disconnected meanwhile, nothing more happens.
func TestDisconnectDuringAuthentication(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		release := make(chan struct{})
		entered := make(chan struct{}, 1)
		k := newKit(t, tr, func(c *helper.Config) {
			c.Handlers.Authenticate = func(ctx context.Context, req helper.AuthenticateRequest) (*helper.AuthResult, error) {
				entered <- struct{}{}
				<-release // ignores ctx on purpose: a callback that does not listen
				return &helper.AuthResult{UserID: "late"}, nil
			}
		})
		c := k.dial()
		_ = c.Emit(protocol.EventAuthenticate, nil)
		<-entered
		_ = c.Abort()
		k.rec.waitFor(t, "disconnect", func() bool { return len(k.rec.disconnected) == 1 })
		close(release)
		// The late result must not resurrect the client anywhere.
		time.Sleep(quiet)
		if s := k.h.Stats(); s.Clients != 0 || s.Authenticated != 0 || s.Users != 0 || s.Rooms != 0 {
			t.Fatalf("stats after late auth: %+v", s)
		}
		// Shutdown waits for the callback's task: by then the late result
		// has been handled, however slow the machine.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := k.h.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		// Once Shutdown has waited for the task, the late result has
		// brought neither a connected callback nor a second disconnect.
		k.rec.mu.Lock()
		n, d := len(k.rec.connected), len(k.rec.disconnected)
		k.rec.mu.Unlock()
		if n != 0 {
			t.Fatalf("connected callback ran %d times", n)
		}
		if d != 1 {
			t.Fatalf("disconnect callback ran %d times, want 1", d)
		}
	})
}

// Spec 5: finalise: connected data, own room and default rooms, user index,
// broadcasts, connected callback after `connected`.
func TestFinaliseAuthentication(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, nil)
		before := time.Now().Add(-time.Second)
		c, cd := k.login("u1")
		if _, err := uuid.Parse(cd.ID); err != nil || cd.UserID != "u1" {
			t.Fatalf("connected %+v", cd)
		}
		ts, err := time.Parse(time.RFC3339Nano, cd.Time)
		if err != nil || ts.Before(before) || !strings.HasSuffix(cd.Time, "Z") {
			t.Fatalf("time %q: %v", cd.Time, err)
		}
		if cd.ServerPublicKey != "" || cd.Salt != "" {
			t.Fatalf("plain client got key fields: %+v", cd)
		}
		v, _ := k.h.GetClient(cd.ID)
		want := []string{cd.ID, protocol.DefaultRoom, protocol.DefaultNotificationRoom}
		slices.Sort(want)
		if !slices.Equal(v.Rooms, want) || v.State != protocol.StateAuthenticated || v.Metadata["role"] != "user" {
			t.Fatalf("view %+v, rooms want %v", v, want)
		}
		if us := k.h.GetClientsByUser("u1"); len(us) != 1 || us[0].ID != cd.ID {
			t.Fatalf("user index %+v", us)
		}
		k.rec.waitFor(t, "connected callback", func() bool { return len(k.rec.connected) == 1 })
		if got := k.rec.connected[0]; got.ClientID != cd.ID || got.UserID != "u1" || got.Metadata["role"] != "user" {
			t.Fatalf("connected callback %+v", got)
		}
		_, _ = k.h.SendToRoom(protocol.DefaultNotificationRoom, "note", "x")
		expectEvent(t, c, "note")
		_, _ = k.h.SendToRoom(cd.ID, "own", "x")
		expectEvent(t, c, "own")

		// Anonymous: no userId in connected, no user index.
		_, acd := k.login("")
		if acd.UserID != "" {
			t.Fatalf("anonymous connected %+v", acd)
		}
		raw := `"userId"`
		_ = raw
		if s := k.h.Stats(); s.Users != 1 || s.Authenticated != 2 {
			t.Fatalf("stats %+v", s)
		}
	})
}

func TestConnectedEventOmitsUserIDForAnonymous(t *testing.T) {
	k := newKit(t, rawSocket, nil)
	c := k.dial()
	_ = c.Emit(protocol.EventAuthenticate, map[string]any{"token": "anon"})
	m := expectEvent(t, c, protocol.EventConnected)
	var fields map[string]any
	if err := json.Unmarshal(m.Data, &fields); err != nil {
		t.Fatal(err)
	}
	if _, ok := fields["userId"]; ok {
		t.Fatalf("anonymous connected carries userId: %s", m.Data)
	}
	for _, f := range []string{"id", "time"} {
		if _, ok := fields[f]; !ok {
			t.Fatalf("connected lacks %s: %s", f, m.Data)
		}
	}
}

func TestCustomDefaultRooms(t *testing.T) {
	k := newKit(t, rawSocket, func(c *helper.Config) { c.Options.DefaultRooms = []string{"lobby"} })
	_, cd := k.login("u1")
	v, _ := k.h.GetClient(cd.ID)
	want := []string{cd.ID, "lobby"}
	slices.Sort(want)
	if !slices.Equal(v.Rooms, want) {
		t.Fatalf("rooms %v, want %v", v.Rooms, want)
	}
	k2 := newKit(t, rawSocket, func(c *helper.Config) { c.Options.DefaultRooms = []string{} })
	_, cd2 := k2.login("u1")
	if v, _ := k2.h.GetClient(cd2.ID); !slices.Equal(v.Rooms, []string{cd2.ID}) {
		t.Fatalf("rooms %v, want only own id", v.Rooms)
	}
}

// Spec 5: the connected callback's failure is logged, never disconnects.
func TestClientConnectedCallbackFailure(t *testing.T) {
	for _, mode := range []string{"error", "panic"} {
		t.Run(mode, func(t *testing.T) {
			k := newKit(t, rawSocket, func(c *helper.Config) {
				c.Handlers.ClientConnected = func(context.Context, helper.ClientInfo) error {
					if mode == "panic" {
						panic("connected exploded")
					}
					return errors.New("connected failed")
				}
			})
			c, _ := k.login("u1")
			roundTrip(t, c)
			_, _ = k.h.Broadcast("after", 1)
			expectEvent(t, c, "after")
		})
	}
}

// Spec 5 / deliberate differences: the heartbeat clock starts at connected,
// so authentication slower than heartbeatTimeout does not get 4002 at once.
func TestHeartbeatClockStartsAtConnected(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, func(c *helper.Config) {
			// The timeout leaves the test a second to send "first" after
			// connected, however loaded the machine.
			c.Options.AuthTimeout = time.Second
			c.Options.HeartbeatInterval = 50 * time.Millisecond
			c.Options.HeartbeatTimeout = time.Second
		})
		c := k.dial()
		sent := time.Now()
		cd, err := c.Authenticate(context.Background(), map[string]any{"token": "slow-1200ms"})
		if err != nil {
			t.Fatal(err)
		}
		v, _ := k.h.GetClient(cd.ID)
		if !v.LastActivity.After(sent.Add(1200 * time.Millisecond)) {
			t.Fatalf("lastActivity %v not reset at connected (authenticate sent %v)", v.LastActivity, sent)
		}
		// Silent from now on: closed by the sweep with 4002, not before it
		// received a message sent right after connected.
		_, _ = k.h.SendToClient(cd.ID, "first", 1)
		expectEvent(t, c, "first")
		expectClose(t, c, protocol.CloseHeartbeatTimeout, protocol.ReasonHeartbeatTimeout)
	})
}

func httptestServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := newHTTPTest(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// slowFailingBroker's Start waits for release and then fails, as a Redis
// broker does when Redis never comes up within the start timeout.
type slowFailingBroker struct {
	broker.Broker
	entered, release chan struct{}
}

func (b *slowFailingBroker) Start(context.Context, broker.Handler) error {
	close(b.entered)
	<-b.release
	return errors.New("redis not ready")
}

// While Start waits for the broker, upgrades are refused: a connection
// accepted then would be left open and out of Shutdown's reach if Start
// failed (fx calls no OnStop for a hook whose OnStart failed).
func TestNoConnectionsWhileStarting(t *testing.T) {
	b := &slowFailingBroker{Broker: broker.NewMemory(), entered: make(chan struct{}), release: make(chan struct{})}
	h, err := helper.New(helper.Config{
		Handlers: helper.Handlers{Authenticate: func(context.Context, helper.AuthenticateRequest) (*helper.AuthResult, error) {
			return &helper.AuthResult{UserID: "u"}, nil
		}},
		Broker: b,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h) // the app's server, already serving
	defer srv.Close()
	started := make(chan error, 1)
	go func() { started <- h.Start(context.Background()) }()
	<-b.entered
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := fxtest.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws")
	if err == nil {
		c.Abort()
	}
	close(b.release)
	if err := <-started; err == nil {
		t.Fatal("Start did not fail")
	}
	if !isStatus(err, http.StatusServiceUnavailable) {
		t.Fatalf("upgrade while starting: err = %v, want HTTP 503", err)
	}
	if n := len(h.GetClients()); n > 0 {
		t.Fatalf("Start failed with %d connection(s) registered", n)
	}
}

// RequireEncryption without an outbound transformer is allowed, as in the
// original, but said: such clients get everything in plain text.
func TestEncryptionWithoutTransformerIsWarned(t *testing.T) {
	for _, withTransformer := range []bool{false, true} {
		core, logs := observer.New(zapcore.WarnLevel)
		hs := helper.Handlers{
			Authenticate: func(context.Context, helper.AuthenticateRequest) (*helper.AuthResult, error) { return nil, nil },
			Handshake:    func(context.Context, helper.HandshakeRequest) (*helper.HandshakeResult, error) { return nil, nil },
		}
		if withTransformer {
			hs.OutboundTransformer = func(context.Context, helper.OutboundRequest) (*protocol.Message, error) { return nil, nil }
		}
		if _, err := helper.New(helper.Config{Options: helper.Options{RequireEncryption: true}, Handlers: hs, Logger: zap.New(core)}); err != nil {
			t.Fatal(err)
		}
		if got := logs.FilterMessageSnippet("without an outbound transformer").Len(); got != map[bool]int{false: 1, true: 0}[withTransformer] {
			t.Fatalf("transformer %v: %d warnings", withTransformer, got)
		}
	}
}

// stuckUnsubscribe follows audiences like a Redis broker, but its
// Unsubscribe waits for its context, as one to a Redis that stopped
// answering does.
type stuckUnsubscribe struct {
	*broker.Memory
	entered chan struct{}
}

func (b stuckUnsubscribe) Unsubscribe(ctx context.Context, _ ...string) error {
	select {
	case b.entered <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return ctx.Err()
}

// A subscription change cut short by Shutdown is no failure to warn of:
// the warning ("will retry") is for changes the helper will retry.
func TestShutdownDoesNotWarnOfSubscriptionChangesItCancels(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	b := stuckUnsubscribe{broker.NewMemoryHub().NewBroker(), make(chan struct{}, 1)}
	k := newKit(t, rawSocket, func(c *helper.Config) { c.Broker = b; c.Logger = zap.New(core) })
	c, _ := k.login("u1")
	_ = c.Abort() // its channels are unsubscribed: the call hangs
	select {
	case <-b.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the departed client's channels were never unsubscribed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := k.h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if n := logs.FilterMessageSnippet("subscription change failed").Len(); n != 0 {
		t.Fatalf("Shutdown logged %d warnings of failed subscription changes: %v", n, logs.All()[0].Message)
	}
}

// The timers close no sooner than they are set to (the other timer tests
// bound them from above): a client authenticating at 60 % of AuthTimeout
// is accepted, and a silent authenticated client is closed 4002 only once
// HeartbeatTimeout has passed since its connected event (from a spec
// audit: nothing asserted the lower bounds).
func TestTimersNeverFireEarly(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		const timeout = time.Second
		k := newKit(t, tr, func(c *helper.Config) {
			c.Options.AuthTimeout = timeout
			c.Options.HeartbeatInterval = 20 * time.Millisecond
			c.Options.HeartbeatTimeout = timeout
		})
		late := k.dial()
		time.Sleep(timeout * 6 / 10)
		if _, err := late.Authenticate(context.Background(), map[string]string{"token": "valid-late"}); err != nil {
			t.Fatalf("authenticate at 60 %% of AuthTimeout: %v", err)
		}
		silent, _ := k.login("silent")
		since := time.Now() // connected has arrived: the heartbeat clock started before
		expectClose(t, silent, protocol.CloseHeartbeatTimeout, protocol.ReasonHeartbeatTimeout)
		if d := time.Since(since); d < timeout-50*time.Millisecond {
			t.Fatalf("closed 4002 %v after connected, HeartbeatTimeout is %v", d, timeout)
		}
	})
}

package helper_test

// Test kit for the helper's black-box tests: a helper served by httptest on
// a real loopback socket, either as a plain *net.TCPConn (the Linux raw fast
// path: peek-to-wait reads, non-blocking inline writes) or wrapped so that it
// is not a syscall.Conn (the portable fallback: blocking reads into a pooled
// buffer, writes through the writer goroutine).

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/protocol"
	"github.com/gobwas/ws"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(runChild(mode))
	}
	goleak.VerifyTestMain(m)
}

type transport string

const (
	// rawSocket: a *net.TCPConn as the module serves it: upgraded as it
	// is accepted (UpgradeListener) and, on Linux, idle connections
	// watched by the epoll poller, inline non-blocking writes.
	rawSocket transport = "raw"
	// rawGoroutine: the same socket upgraded through net/http (ServeHTTP)
	// with the poller disabled: one read goroutine per connection,
	// waiting by MSG_PEEK without a buffer.
	rawGoroutine transport = "raw-goroutine"
	// wrappedConn: not a syscall.Conn (as a TLS connection is not): the
	// portable path, blocking reads, writes through the writer goroutine.
	wrappedConn transport = "fallback"
)

var transports = []transport{rawSocket, rawGoroutine, wrappedConn}

// both runs f once per transport, as parallel subtests.
func both(t *testing.T, f func(t *testing.T, tr transport)) {
	t.Helper()
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			t.Parallel()
			f(t, tr)
		})
	}
}

// plainListener hands out connections that hide their syscall.Conn, so that
// the helper takes its portable path.
type plainListener struct{ net.Listener }

type plainConn struct{ net.Conn }

func (l plainListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return plainConn{c}, nil
}

// smallBufferListener shrinks the kernel send buffer of accepted sockets so
// that backpressure tests reach the helper's own limit with little data.
type smallBufferListener struct {
	net.Listener
	size int
}

func (l smallBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(l.size)
	}
	return c, nil
}

// kitOption adjusts how newKit serves the helper.
type kitOption func(*kitSettings)

type kitSettings struct{ sendBuffer int }

func withSendBuffer(n int) kitOption { return func(s *kitSettings) { s.sendBuffer = n } }

// recorder keeps what the lifecycle and message callbacks saw.
type recorder struct {
	mu           sync.Mutex
	changed      chan struct{}
	connected    []helper.ClientInfo
	disconnected []helper.ClientInfo
	messages     []helper.MessageRequest
	joins        []helper.ValidateRoomRequest
	authData     []string
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

func (r *recorder) record(f func()) {
	r.mu.Lock()
	f()
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// waitFor waits until cond (called under the recorder's lock) holds.
func (r *recorder) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		r.mu.Lock()
		ok, ch := cond(), r.changed
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (r *recorder) disconnectedIDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []string
	for _, d := range r.disconnected {
		ids = append(ids, d.ClientID)
	}
	return ids
}

func (r *recorder) messageCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.messages)
}

// kit is one served helper.
type kit struct {
	t   *testing.T
	h   *helper.WebSocketServerHelper
	srv *httptest.Server
	url string
	rec *recorder
}

// tokenAuth is the kit's authenticator: {"token":"valid-<user>"} logs in
// <user>, "anon" is anonymous, "error" fails, "panic" panics, "slow-<ms>"
// takes that long before accepting "slow", "block" waits for the client to go.
func tokenAuth(ctx context.Context, req helper.AuthenticateRequest) (*helper.AuthResult, error) {
	var d struct {
		Token string `json:"token"`
	}
	_ = json.Unmarshal(req.Data, &d)
	switch tok := d.Token; {
	case strings.HasPrefix(tok, "valid-"):
		return &helper.AuthResult{UserID: strings.TrimPrefix(tok, "valid-"), Metadata: map[string]any{"role": "user"}}, nil
	case tok == "anon":
		return &helper.AuthResult{}, nil
	case tok == "error":
		return nil, errors.New("auth backend down")
	case tok == "panic":
		panic("authenticator exploded")
	case strings.HasPrefix(tok, "slow-"):
		d, err := time.ParseDuration(strings.TrimPrefix(tok, "slow-"))
		if err != nil {
			return nil, err
		}
		select {
		case <-time.After(d):
			return &helper.AuthResult{UserID: "slow"}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	case tok == "block":
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return nil, nil
}

// newKit serves a helper with short timers and recording callbacks; edit
// adjusts the config. Shutdown and server close are registered as cleanup.
func newKit(t *testing.T, tr transport, edit func(*helper.Config), opts ...kitOption) *kit {
	t.Helper()
	var set kitSettings
	for _, o := range opts {
		o(&set)
	}
	rec := newRecorder()
	cfg := helper.Config{
		Options: helper.Options{
			AuthTimeout:       2 * time.Second,
			HeartbeatInterval: time.Hour,
			HeartbeatTimeout:  time.Hour,
			IdleTimeout:       time.Hour,
		},
		Handlers: helper.Handlers{
			Authenticate: func(ctx context.Context, req helper.AuthenticateRequest) (*helper.AuthResult, error) {
				rec.record(func() { rec.authData = append(rec.authData, string(req.Data)) })
				return tokenAuth(ctx, req)
			},
			ValidateRoom: func(ctx context.Context, req helper.ValidateRoomRequest) ([]string, error) {
				rec.record(func() { rec.joins = append(rec.joins, req) })
				var ok []string
				for _, r := range req.Rooms {
					if !strings.HasPrefix(r, "deny-") {
						ok = append(ok, r)
					}
				}
				return ok, nil
			},
			ClientConnected: func(ctx context.Context, info helper.ClientInfo) error {
				rec.record(func() { rec.connected = append(rec.connected, info) })
				return nil
			},
			ClientDisconnected: func(ctx context.Context, info helper.ClientInfo) error {
				rec.record(func() { rec.disconnected = append(rec.disconnected, info) })
				return nil
			},
			Message: func(ctx context.Context, req helper.MessageRequest) error {
				rec.record(func() { rec.messages = append(rec.messages, req) })
				return nil
			},
		},
	}
	if tr == rawGoroutine {
		cfg.Options.DisablePoller = true
	}
	if edit != nil {
		edit(&cfg)
	}
	h, err := helper.New(cfg)
	if err != nil {
		t.Fatalf("helper.New: %v", err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	srv := httptest.NewUnstartedServer(h)
	if tr == rawSocket {
		// As the module listens: connections accepted once their first
		// bytes are in, so that upgrades are taken directly.
		_ = srv.Listener.Close()
		srv.Listener = deferredListener(t)
	}
	if set.sendBuffer > 0 {
		srv.Listener = smallBufferListener{srv.Listener, set.sendBuffer}
	}
	switch tr {
	case wrappedConn:
		srv.Listener = plainListener{srv.Listener}
	case rawSocket:
		srv.Listener = h.UpgradeListener(srv.Listener)
	}
	srv.Start()
	k := &kit{t: t, h: h, srv: srv, rec: rec, url: "ws" + strings.TrimPrefix(srv.URL, "http") + h.Path()}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		srv.Close()
	})
	return k
}

// dial connects a protocol client, closed at cleanup.
func (k *kit) dial() *fxtest.Client {
	k.t.Helper()
	c, err := fxtest.Dial(context.Background(), k.url)
	if err != nil {
		k.t.Fatalf("dial: %v", err)
	}
	k.t.Cleanup(func() { _ = c.Abort() })
	return c
}

// dialCompressed connects a protocol client offering permessage-deflate,
// closed at cleanup; it fails the test unless the server accepted it.
func (k *kit) dialCompressed() *fxtest.Client {
	k.t.Helper()
	c, err := fxtest.DialCompressed(context.Background(), k.url, nil)
	if err != nil {
		k.t.Fatalf("dial: %v", err)
	}
	k.t.Cleanup(func() { _ = c.Abort() })
	if !c.Compressed() {
		k.t.Fatal("permessage-deflate not negotiated")
	}
	return c
}

// login dials and authenticates as user ("" = anonymous).
func (k *kit) login(user string) (*fxtest.Client, protocol.ConnectedData) {
	k.t.Helper()
	c := k.dial()
	tok := "anon"
	if user != "" {
		tok = "valid-" + user
	}
	cd, err := c.Authenticate(context.Background(), map[string]any{"token": tok})
	if err != nil {
		k.t.Fatalf("authenticate %q: %v", user, err)
	}
	return c, cd
}

// unauthorizedID returns the id of the single unauthorized client.
func (k *kit) unauthorizedID() string {
	k.t.Helper()
	var id string
	eventually(k.t, "an unauthorized client", func() bool {
		for _, v := range k.h.GetClients() {
			if v.State == protocol.StateUnauthorized {
				id = v.ID
				return true
			}
		}
		return false
	})
	return id
}

// eventually polls cond until it holds or 5 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// expectClose waits for the server's close frame and checks code and reason
// ("" reason = any).
func expectClose(t *testing.T, c *fxtest.Client, code int, reason string) {
	t.Helper()
	got, why, err := c.ExpectClose(context.Background())
	if err != nil {
		t.Fatalf("expected close %d: %v", code, err)
	}
	if int(got) != code || (reason != "" && why != reason) {
		t.Fatalf("close = %d %q, want %d %q", got, why, code, reason)
	}
}

func expectError(t *testing.T, c *fxtest.Client, text string) {
	t.Helper()
	got, err := c.ExpectError(context.Background())
	if err != nil {
		t.Fatalf("expected error %q: %v", text, err)
	}
	if got != text {
		t.Fatalf("error = %q, want %q", got, text)
	}
}

func expectEvent(t *testing.T, c *fxtest.Client, event string) protocol.Message {
	t.Helper()
	m, err := c.Expect(context.Background(), event)
	if err != nil {
		t.Fatalf("expected %q: %v", event, err)
	}
	return m
}

// quiet is how long a negative check waits where no marker can prove it.
const quiet = 150 * time.Millisecond

// expectNothing proves, with a marker rather than a wait, that no message of
// event has been sent to c so far: it sends "not json", which the server
// answers with "Invalid message format", and fails if event (or another
// error) comes before that answer. The answer is queued behind anything
// already on its way to c: the helper's sends (local ones, and those
// through the in-process hub, whose Publish delivers before it returns)
// are on the client's queue when they return, the client's own messages
// are handled in order, and no frame overtakes a queued one. Errors have
// their own check, expectNoError.
func expectNothing(t *testing.T, c *fxtest.Client, event string) {
	t.Helper()
	if event == protocol.EventError {
		t.Fatal("expectNothing(error): use expectNoError")
	}
	if err := c.SendText("not json"); err != nil {
		t.Fatalf("marker after checking for no %q: %v", event, err)
	}
	m, err := c.ExpectAny(context.Background(), event, protocol.EventError)
	if err != nil {
		t.Fatalf("marker after checking for no %q: %v", event, err)
	}
	if m.Event == event {
		t.Fatalf("unexpected %q: %s", event, m.Data)
	}
	if text := errorText(m); text != protocol.ErrTextInvalidFormat {
		t.Fatalf("unexpected error %q before the marker (checking for no %q)", text, event)
	}
}

// expectNoError proves, with markers, that no error has been sent to c so
// far: two messages the server answers with two different errors, "not
// json" (Invalid message format) and then authenticate again (Already
// authenticated) or, before authentication, an application event (Not
// authenticated), must get the first two errors c receives, in that order.
// A stray error of any text ahead of them breaks the sequence.
func expectNoError(t *testing.T, c *fxtest.Client, authenticated bool) {
	t.Helper()
	second, want := `{"event":"marker"}`, protocol.ErrTextNotAuthenticated
	if authenticated {
		second, want = `{"event":"authenticate","data":{}}`, protocol.ErrTextAlreadyAuthenticated
	}
	for _, s := range []string{"not json", second} {
		if err := c.SendText(s); err != nil {
			t.Fatalf("marker after checking for no error: %v", err)
		}
	}
	for _, w := range []string{protocol.ErrTextInvalidFormat, want} {
		got, err := c.ExpectError(context.Background())
		if err != nil {
			t.Fatalf("marker %q after checking for no error: %v", w, err)
		}
		if got != w {
			t.Fatalf("unexpected error %q (the marker %q was due)", got, w)
		}
	}
}

func errorText(m protocol.Message) string {
	var d protocol.ErrorData
	if err := json.Unmarshal(m.Data, &d); err != nil {
		return string(m.Data)
	}
	return d.Message
}

// roundTrip proves the connection is open and processed everything sent
// before: an unknown-event heartbeat cannot be observed, so it asks the
// server for an error ("Invalid message format") and waits for it.
func roundTrip(t *testing.T, c *fxtest.Client) {
	t.Helper()
	if err := c.SendText("not json"); err != nil {
		t.Fatalf("round trip: %v", err)
	}
	expectError(t, c, protocol.ErrTextInvalidFormat)
}

// rawFrame builds a client frame by hand: fin, rsv, opcode, masked.
func rawFrame(fin bool, rsv byte, op ws.OpCode, masked bool, payload []byte) []byte {
	b0 := op
	var first byte = byte(b0) | rsv<<4
	if fin {
		first |= 0x80
	}
	var hdr []byte
	n := len(payload)
	var mbit byte
	if masked {
		mbit = 0x80
	}
	switch {
	case n < 126:
		hdr = []byte{first, mbit | byte(n)}
	case n <= 0xffff:
		hdr = []byte{first, mbit | 126, byte(n >> 8), byte(n)}
	default:
		hdr = []byte{first, mbit | 127, 0, 0, 0, 0, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	}
	p := append([]byte(nil), payload...)
	if masked {
		mask := [4]byte{0x12, 0x34, 0x56, 0x78}
		hdr = append(hdr, mask[:]...)
		ws.Cipher(p, mask, 0)
	}
	return append(hdr, p...)
}

func newHTTPTest(h http.Handler) *httptest.Server { return httptest.NewServer(h) }

// holdRoomCheck makes the room check of a join whose first room is room
// say so on the channel it returns, then wait until release is closed.
func holdRoomCheck(cfg *helper.Config, room string) (inCheck <-chan struct{}, release chan struct{}) {
	in := make(chan struct{}, 1)
	release = make(chan struct{})
	check := cfg.Handlers.ValidateRoom
	cfg.Handlers.ValidateRoom = func(ctx context.Context, req helper.ValidateRoomRequest) ([]string, error) {
		if req.Rooms[0] == room {
			in <- struct{}{}
			<-release // ignores its context
		}
		return check(ctx, req)
	}
	return in, release
}

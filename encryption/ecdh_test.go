package encryption_test

import (
	"context"
	"crypto/ecdh"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/encryption"
	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/protocol"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// server is one helper with the ECDH scheme installed, on an httptest
// server. Its message callback answers `echo` through the public send and
// records what it got.
type server struct {
	h    *helper.WebSocketServerHelper
	enc  *encryption.ECDH
	url  string
	mu   sync.Mutex
	msgs []helper.MessageRequest
	got  chan struct{}
}

func startServer(t *testing.T, b broker.Broker) *server {
	t.Helper()
	s := &server{enc: encryption.NewECDH(encryption.Options{}), got: make(chan struct{}, 100)}
	handlers := s.enc.Handlers(helper.Handlers{
		Authenticate: func(_ context.Context, req helper.AuthenticateRequest) (*helper.AuthResult, error) {
			var d struct{ Token string }
			_ = json.Unmarshal(req.Data, &d)
			if user, ok := strings.CutPrefix(d.Token, "valid-"); ok {
				return &helper.AuthResult{UserID: user}, nil
			}
			return nil, nil
		},
		ValidateRoom: func(_ context.Context, req helper.ValidateRoomRequest) ([]string, error) {
			var ok []string
			for _, r := range req.Rooms {
				if strings.HasPrefix(r, "public-") {
					ok = append(ok, r)
				}
			}
			return ok, nil
		},
		Message: func(ctx context.Context, req helper.MessageRequest) error {
			s.mu.Lock()
			s.msgs = append(s.msgs, req)
			s.mu.Unlock()
			s.got <- struct{}{}
			if req.Message.Event == "echo" {
				return s.h.Send(ctx, req.ClientID, "echo", req.Message.Data)
			}
			return nil
		},
	})
	h, err := helper.New(helper.Config{
		Options:  helper.Options{RequireEncryption: true, AuthTimeout: 2 * time.Second},
		Handlers: handlers,
		Broker:   b,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.h = h
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	s.url = "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		srv.Close()
		if n := s.enc.Len(); n != 0 {
			t.Errorf("%d keys left after shutdown", n)
		}
	})
	return s
}

func (s *server) messages() []helper.MessageRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]helper.MessageRequest(nil), s.msgs...)
}

func connect(t *testing.T, s *server, user string) (*fxtest.EncryptedClient, protocol.ConnectedData) {
	t.Helper()
	ctx := context.Background()
	c, err := fxtest.DialEncrypted(ctx, s.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	cd, err := c.Authenticate(ctx, map[string]any{"token": "valid-" + user})
	if err != nil {
		t.Fatal(err)
	}
	return c, cd
}

func expectData(t *testing.T, c *fxtest.EncryptedClient, event, want string) {
	t.Helper()
	m, err := c.ExpectDecrypted(context.Background(), event)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data) != want {
		t.Fatalf("%s: data %s, want %s", event, m.Data, want)
	}
}

func TestConnectedCarriesKeyMaterialInPlainText(t *testing.T) {
	s := startServer(t, nil)
	_, cd := connect(t, s, "u1")
	pub, err := encryption.DecodeBase64(cd.ServerPublicKey)
	if err != nil || len(pub) != encryption.PublicKeySize || pub[0] != 4 {
		t.Fatalf("serverPublicKey %q: %v", cd.ServerPublicKey, err)
	}
	salt, err := encryption.DecodeBase64(cd.Salt)
	if err != nil || len(salt) != encryption.SaltSize {
		t.Fatalf("salt %q: %v", cd.Salt, err)
	}
	v, ok := s.h.GetClient(cd.ID)
	if !ok || !v.Encrypted || v.ServerPublicKey != cd.ServerPublicKey || v.Salt != cd.Salt {
		t.Fatalf("client view %+v", v)
	}
	if s.enc.Len() != 1 || s.enc.Session(cd.ID) == nil {
		t.Fatalf("key store: %d keys", s.enc.Len())
	}
}

func TestEchoRoundTrip(t *testing.T) {
	s := startServer(t, nil)
	c, cd := connect(t, s, "u1")
	if err := c.EmitEncrypted("echo", map[string]any{"text": "héllo 👋", "n": 1}); err != nil {
		t.Fatal(err)
	}
	expectData(t, c, "echo", `{"n":1,"text":"héllo 👋"}`)
	// The message callback saw the plain message, not `encrypted`.
	ms := s.messages()
	if len(ms) != 1 || ms[0].Message.Event != "echo" || ms[0].ClientID != cd.ID || ms[0].UserID != "u1" ||
		string(ms[0].Message.Data) != `{"n":1,"text":"héllo 👋"}` {
		t.Fatalf("message callback got %+v", ms)
	}
	// Nothing reached the client in clear.
	if err := c.ExpectNothing("echo", 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
}

func TestEncryptedJoinLeaveAndRoomDelivery(t *testing.T) {
	s := startServer(t, nil)
	a, cdA := connect(t, s, "a")
	b, _ := connect(t, s, "b")
	ctx := context.Background()
	for _, c := range []*fxtest.EncryptedClient{a, b} {
		if err := c.EmitEncrypted(protocol.EventJoin, protocol.RoomsData{Rooms: []string{"public-x", "private-y"}}); err != nil {
			t.Fatal(err)
		}
	}
	// Joins run on the read loops; an echo round trip orders after them.
	for _, c := range []*fxtest.EncryptedClient{a, b} {
		if err := c.EmitEncrypted("echo", 1); err != nil {
			t.Fatal(err)
		}
		expectData(t, c, "echo", "1")
	}
	if rooms := s.h.GetClientsByRoom("public-x"); len(rooms) != 2 {
		t.Fatalf("public-x members: %d", len(rooms))
	}
	if rooms := s.h.GetClientsByRoom("private-y"); len(rooms) != 0 {
		t.Fatalf("private-y members: %d", len(rooms))
	}
	n, err := s.h.SendToRoom("public-x", "news", map[string]string{"v": "1"}, cdA.ID)
	if err != nil || n != 1 {
		t.Fatalf("SendToRoom = %d, %v", n, err)
	}
	expectData(t, b, "news", `{"v":"1"}`)
	// Leave, encrypted too; then room sends no longer reach b.
	if err := b.EmitEncrypted(protocol.EventLeave, protocol.RoomsData{Rooms: []string{"public-x"}}); err != nil {
		t.Fatal(err)
	}
	if err := b.EmitEncrypted("echo", 2); err != nil {
		t.Fatal(err)
	}
	expectData(t, b, "echo", "2")
	if n, _ := s.h.SendToRoom("public-x", "news", 2); n != 1 {
		t.Fatalf("after leave: %d recipients", n)
	}
	expectData(t, a, "news", "2")
	// Heartbeat inside an encrypted message is a heartbeat, not an app event.
	if err := a.EmitEncrypted(protocol.EventHeartbeat, nil); err != nil {
		t.Fatal(err)
	}
	if err := a.EmitEncrypted("echo", 3); err != nil {
		t.Fatal(err)
	}
	expectData(t, a, "echo", "3")
	for _, m := range s.messages() {
		if m.Message.Event != "echo" {
			t.Fatalf("message callback got %q", m.Message.Event)
		}
	}
	_ = ctx
}

func TestUserDelivery(t *testing.T) {
	s := startServer(t, nil)
	c1, _ := connect(t, s, "alice")
	c2, _ := connect(t, s, "alice")
	other, _ := connect(t, s, "bob")
	if err := s.h.SendToUser(context.Background(), "alice", "dm", "hi"); err != nil {
		t.Fatal(err)
	}
	expectData(t, c1, "dm", `"hi"`)
	expectData(t, c2, "dm", `"hi"`)
	if err := other.ExpectNothing(protocol.EventEncrypted, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
}

func TestBroadcastKeepsPerClientOrderAndUsesDistinctKeys(t *testing.T) {
	s := startServer(t, nil)
	const clients, msgs = 12, 30 // more clients than EncryptedBatchLimit
	cs := make([]*fxtest.EncryptedClient, clients)
	for i := range cs {
		cs[i], _ = connect(t, s, "u")
	}
	for i := range msgs {
		if n, err := s.h.Broadcast("tick", i); err != nil || n != clients {
			t.Fatalf("Broadcast = %d, %v", n, err)
		}
	}
	seen := map[string]bool{}
	for _, c := range cs {
		for i := range msgs {
			raw, err := c.Expect(context.Background(), protocol.EventEncrypted)
			if err != nil {
				t.Fatal(err)
			}
			var p encryption.Payload
			if err := json.Unmarshal(raw.Data, &p); err != nil {
				t.Fatal(err)
			}
			if seen[p.IV] {
				t.Fatal("IV reused")
			}
			seen[p.IV] = true
			m, err := c.Decrypt(raw)
			if err != nil {
				t.Fatal(err)
			}
			if m.Event != "tick" || string(m.Data) != jsonInt(i) {
				t.Fatalf("message %d: %s %s", i, m.Event, m.Data)
			}
		}
	}
	// A client cannot read another's messages.
	s.h.Broadcast("secret", 1)
	raw, err := cs[0].Expect(context.Background(), protocol.EventEncrypted)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs[1].Decrypt(raw); err == nil {
		t.Fatal("client 1 decrypted client 0's message")
	}
}

func jsonInt(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestCrossInstanceDelivery(t *testing.T) {
	hub := broker.NewMemoryHub()
	s1 := startServer(t, hub.NewBroker())
	s2 := startServer(t, hub.NewBroker())
	c, cd := connect(t, s2, "carol")
	ctx := context.Background()

	// Another instance sends to the client by id: published as a room
	// envelope, delivered (encrypted) by the instance that holds it.
	if err := s1.h.Send(ctx, cd.ID, "direct", map[string]int{"x": 1}); err != nil {
		t.Fatal(err)
	}
	expectData(t, c, "direct", `{"x":1}`)
	if err := s1.h.Send(ctx, "", "all", true); err != nil {
		t.Fatal(err)
	}
	expectData(t, c, "all", "true")
	if err := s1.h.SendToUser(ctx, "carol", "dm", "yo"); err != nil {
		t.Fatal(err)
	}
	expectData(t, c, "dm", `"yo"`)

	// A standalone emitter's envelope (serverId "emitter").
	em := hub.NewBroker()
	if err := em.Start(ctx, func(string, []byte) {}); err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	for _, env := range []protocol.Envelope{
		{ServerID: protocol.EmitterServerID, Type: protocol.TypeClient, Target: cd.ID, Event: "job", Data: json.RawMessage(`{"id":7}`)},
		{ServerID: protocol.EmitterServerID, Type: protocol.TypeRoom, Target: protocol.DefaultRoom, Event: "room", Data: json.RawMessage(`[1]`)},
		{ServerID: protocol.EmitterServerID, Type: protocol.TypeBroadcast, Event: "bc", Data: json.RawMessage(`"b"`)},
	} {
		payload, _ := json.Marshal(&env)
		if err := em.Publish(ctx, env.Channel(), payload); err != nil {
			t.Fatal(err)
		}
	}
	expectData(t, c, "job", `{"id":7}`)
	expectData(t, c, "room", `[1]`)
	expectData(t, c, "bc", `"b"`)
}

func TestHandshakeFailures(t *testing.T) {
	s := startServer(t, nil)
	p384, _ := ecdh.P384().GenerateKey(rand.Reader)
	offCurve := make([]byte, 65)
	offCurve[0] = 4
	offCurve[64] = 1
	p256, _ := ecdh.P256().GenerateKey(rand.Reader)
	//lint:ignore SA1019 only to build a compressed point (crypto/ecdh has no compressed form)
	x, y := elliptic.Unmarshal(elliptic.P256(), p256.PublicKey().Bytes())
	compressed := elliptic.MarshalCompressed(elliptic.P256(), x, y)
	// An x with no point on the curve: x³ - 3x + b is a non-residue for
	// about half of all x; try until UnmarshalCompressed says so.
	badCompressed := append([]byte(nil), compressed...)
	for i := byte(0); ; i++ {
		if x, _ := elliptic.UnmarshalCompressed(elliptic.P256(), badCompressed); x == nil {
			break
		}
		badCompressed[32] = i
	}
	b64 := base64.StdEncoding.EncodeToString
	cases := map[string]map[string]any{
		"missing":                {"token": "valid-u"},
		"empty":                  {"token": "valid-u", "publicKey": ""},
		"not a string":           {"token": "valid-u", "publicKey": 42},
		"not base64":             {"token": "valid-u", "publicKey": "not base64!"},
		"base64 w/ nl":           {"token": "valid-u", "publicKey": b64(p256.PublicKey().Bytes())[:40] + "\n" + b64(p256.PublicKey().Bytes())[40:]},
		"wrong curve":            {"token": "valid-u", "publicKey": b64(p384.PublicKey().Bytes())},
		"off curve":              {"token": "valid-u", "publicKey": b64(offCurve)},
		"compressed, off curve":  {"token": "valid-u", "publicKey": b64(badCompressed)},
		"compressed, bad prefix": {"token": "valid-u", "publicKey": b64(append([]byte{5}, compressed[1:]...))},
		"private bytes":          {"token": "valid-u", "publicKey": b64(p256.Bytes())},
	}
	ctx := context.Background()
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := fxtest.Dial(ctx, s.url)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Abort()
			if err := c.Emit(protocol.EventAuthenticate, data); err != nil {
				t.Fatal(err)
			}
			text, err := c.ExpectError(ctx)
			if err != nil || text != protocol.ErrTextHandshakeFailed {
				t.Fatalf("error %q, %v", text, err)
			}
			code, reason, err := c.ExpectClose(ctx)
			if err != nil || code != protocol.CloseEncryptionRequired || reason != protocol.ReasonEncryptionRequired {
				t.Fatalf("close %d %q %v", code, reason, err)
			}
			for _, m := range c.Messages() {
				if m.Event == protocol.EventConnected {
					t.Fatal("connected sent after a failed handshake")
				}
			}
		})
	}
	// A rejected authentication never reaches the handshake.
	c, err := fxtest.DialEncrypted(ctx, s.url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Abort()
	if _, err := c.Authenticate(ctx, map[string]any{"token": "nope"}); err == nil {
		t.Fatal("authenticated")
	}
	if code, _, _ := c.ExpectClose(ctx); code != protocol.CloseAuthFailed {
		t.Fatalf("close %d", code)
	}
	if n := s.enc.Len(); n != 0 {
		t.Fatalf("%d keys after failed handshakes", n)
	}
}

func TestBadEncryptedInputHarmsNobody(t *testing.T) {
	s := startServer(t, nil)
	c, _ := connect(t, s, "u")
	bystander, _ := connect(t, s, "v")
	good, err := c.Session().EncryptMessage("echo", json.RawMessage(`"x"`))
	if err != nil {
		t.Fatal(err)
	}
	var p encryption.Payload
	_ = json.Unmarshal(good, &p)
	tampered := p
	flip := "A"
	if p.CT[0] == 'A' { // a random ciphertext starts with A one time in 64
		flip = "B"
	}
	tampered.CT = flip + p.CT[1:]
	wrongKey, _ := encryption.NewSession(make([]byte, 32))
	foreign, _ := wrongKey.EncryptMessage("echo", nil)
	notJSON, _ := c.Session().Seal([]byte("not json"))
	noEvent, _ := c.Session().Seal([]byte(`{"data":1}`))
	nested, _ := c.Session().EncryptMessage(protocol.EventEncrypted, good)
	for _, d := range []any{tampered, json.RawMessage(foreign), notJSON, noEvent, json.RawMessage(nested),
		"str", map[string]any{"iv": 1, "ct": 2}, map[string]string{"iv": "!!!!", "ct": p.CT}, nil} {
		if err := c.Emit(protocol.EventEncrypted, d); err != nil {
			t.Fatal(err)
		}
	}
	// All dropped; the connection serves on.
	if err := c.EmitEncrypted("echo", "after"); err != nil {
		t.Fatal(err)
	}
	expectData(t, c, "echo", `"after"`)
	if ms := s.messages(); len(ms) != 1 {
		t.Fatalf("message callback got %d messages: %+v", len(ms), ms)
	}
	if err := bystander.EmitEncrypted("echo", "ok"); err != nil {
		t.Fatal(err)
	}
	expectData(t, bystander, "echo", `"ok"`)
}

func TestKeysGoneAfterDisconnect(t *testing.T) {
	s := startServer(t, nil)
	const n = 20
	cs := make([]*fxtest.EncryptedClient, n)
	for i := range cs {
		cs[i], _ = connect(t, s, "u")
	}
	if got := s.enc.Len(); got != n {
		t.Fatalf("%d keys, want %d", got, n)
	}
	for i, c := range cs {
		if i%2 == 0 {
			_ = c.Close()
		} else {
			_ = c.Abort() // no close frame
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.enc.Len() != 0 || s.h.Stats().Clients != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d keys, %d clients left", s.enc.Len(), s.h.Stats().Clients)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestHandshakeForClientGoneMeanwhileKeepsNoKey(t *testing.T) {
	e := encryption.NewECDH(encryption.Options{})
	priv, _ := ecdh.P256().GenerateKey(rand.Reader)
	data, _ := json.Marshal(map[string]string{"publicKey": encryption.EncodePublicKey(priv.PublicKey())})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if res, err := e.Handshake(ctx, helper.HandshakeRequest{ClientID: "c1", Data: data}); err == nil || res != nil {
		t.Fatalf("handshake for a gone client: %v %v", res, err)
	}
	if e.Len() != 0 {
		t.Fatal("key kept for a gone client")
	}
	res, err := e.Handshake(context.Background(), helper.HandshakeRequest{ClientID: "c1", Data: data})
	if err != nil || res == nil || e.Len() != 1 {
		t.Fatal(res, err, e.Len())
	}
	_ = e.ClientDisconnected(context.Background(), helper.ClientInfo{ClientID: "c1"})
	if e.Len() != 0 {
		t.Fatal("key kept after disconnect")
	}
	// No key: the transformer refuses rather than sending in clear.
	if m, err := e.Transform(context.Background(), helper.OutboundRequest{Client: helper.ClientView{ID: "c1"}, Event: "x"}); err == nil || m != nil {
		t.Fatal("transform without a key", m, err)
	}
}

func TestWrapClientDisconnectedCallsNext(t *testing.T) {
	e := encryption.NewECDH(encryption.Options{})
	called := ""
	h := e.Handlers(helper.Handlers{ClientDisconnected: func(_ context.Context, info helper.ClientInfo) error {
		called = info.ClientID
		return nil
	}})
	if h.Handshake == nil || h.OutboundTransformer == nil || h.InboundTransformer == nil {
		t.Fatal("handlers not installed")
	}
	_ = h.ClientDisconnected(context.Background(), helper.ClientInfo{ClientID: "z"})
	if called != "z" {
		t.Fatal("next disconnect hook not called")
	}
}

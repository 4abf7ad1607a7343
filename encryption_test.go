package websocket_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"

	websocket "github.com/fxws/websocket"
	"github.com/fxws/websocket/encryption"
	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/protocol"
	"go.uber.org/fx"
	"go.uber.org/goleak"
)

// populateECDH stores the *encryption.ECDH provided under ECDHKey.
func populateECDH(dst **encryption.ECDH) fx.Option {
	return fx.Invoke(fx.Annotate(func(e *encryption.ECDH) { *dst = e }, fx.ParamTags(websocket.ECDHKey)))
}

// disconnects records the ids the app's own disconnect handler saw.
type disconnects struct {
	mu  sync.Mutex
	ids []string
}

func (d *disconnects) handler(_ context.Context, info helper.ClientInfo) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ids = append(d.ids, info.ClientID)
	return errors.New("the app's handler fails: the key is gone anyway")
}

func (d *disconnects) saw(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, v := range d.ids {
		if v == id {
			return true
		}
	}
	return false
}

// echo answers every application event with `echo` carrying its data.
func echo(ref *websocket.HelperRef) helper.MessageFunc {
	return func(ctx context.Context, req helper.MessageRequest) error {
		return ref.Helper().Send(ctx, req.ClientID, "echo", map[string]any{"event": req.Message.Event, "data": req.Message.Data})
	}
}

// TestECDHEncryption: one option turns the scheme on: the handshake,
// sealed delivery, decryption of sealed client events, the key dropped on
// disconnect and the app's own disconnect handler still called.
func TestECDHEncryption(t *testing.T) {
	var enc *encryption.ECDH
	var gone disconnects
	srv := fxtest.StartServer(t,
		websocket.WithAuthenticate(auth),
		websocket.WithClientDisconnected(gone.handler),
		fx.Provide(fx.Annotate(echo, fx.ResultTags(websocket.MessageHandlerKey))),
		websocket.WithECDHEncryption(),
		populateECDH(&enc),
	)
	if !srv.Helper().Options().RequireEncryption {
		t.Fatal("RequireEncryption not set")
	}
	ctx := ctxT(t)
	c, err := fxtest.DialEncrypted(ctx, srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Abort() })
	cd, err := c.Authenticate(ctx, token("ann")) // fails unless connected carries serverPublicKey and salt
	if err != nil {
		t.Fatal(err)
	}
	if enc.Session(cd.ID) == nil || enc.Len() != 1 {
		t.Fatalf("after the handshake: session %v, %d keys", enc.Session(cd.ID), enc.Len())
	}

	// Server to client: sealed, and only sealed.
	if ok, err := srv.Helper().SendToClient(cd.ID, "secret", map[string]int{"n": 42}); !ok || err != nil {
		t.Fatalf("SendToClient: %v %v", ok, err)
	}
	m, err := c.ExpectDecrypted(ctx, "secret")
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data) != `{"n":42}` {
		t.Errorf("decrypted data %s", m.Data)
	}
	for _, raw := range c.Messages() {
		if raw.Event == "secret" {
			t.Errorf("a message went in clear: %s", raw.Data)
		}
	}

	// Client to server, sealed (our extension): the message handler gets
	// the plain event, and its answer comes back sealed.
	if err := c.EmitEncrypted("ping", []int{1, 2}); err != nil {
		t.Fatal(err)
	}
	m, err = c.ExpectDecrypted(ctx, "echo")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Event string
		Data  json.RawMessage
	}
	if err := json.Unmarshal(m.Data, &got); err != nil || got.Event != "ping" || string(got.Data) != "[1,2]" {
		t.Errorf("echo of the sealed event: %s (%v)", m.Data, err)
	}

	// Disconnect: the key goes, and the app's handler ran too.
	if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Log(err)
	}
	waitFor(t, func() bool { return enc.Session(cd.ID) == nil && gone.saw(cd.ID) })
	if enc.Len() != 0 {
		t.Errorf("%d keys left after the only client left", enc.Len())
	}
}

// TestECDHEncryptionRefusesPlainClients: a client without a public key
// gets "Encryption handshake failed" and 4004, and no key is kept.
func TestECDHEncryptionRefusesPlainClients(t *testing.T) {
	var enc *encryption.ECDH
	srv := fxtest.StartServer(t, websocket.WithAuthenticate(auth), websocket.WithECDHEncryption(), populateECDH(&enc))
	ctx := ctxT(t)
	c := srv.Dial(t)
	if err := c.Emit(protocol.EventAuthenticate, token("bob")); err != nil {
		t.Fatal(err)
	}
	if text, err := c.ExpectError(ctx); err != nil || text != protocol.ErrTextHandshakeFailed {
		t.Errorf("error event %q (%v), want %q", text, err, protocol.ErrTextHandshakeFailed)
	}
	if code, _, _ := c.ExpectClose(ctx); code != protocol.CloseEncryptionRequired {
		t.Errorf("close %d, want 4004", code)
	}
	if enc.Len() != 0 {
		t.Errorf("%d keys after a refused handshake", enc.Len())
	}
}

// TestECDHEncryptionKeepsBoundOptions: the option only adds
// RequireEncryption to the options the app binds, in any order; the
// disconnect handler is wrapped without one bound too (keys still go).
func TestECDHEncryptionKeepsBoundOptions(t *testing.T) {
	var enc *encryption.ECDH
	srv := fxtest.StartServer(t,
		websocket.WithECDHEncryption(encryption.Options{}),
		websocket.WithServerOptions(websocket.ServerOptions{Options: helper.Options{Path: "/secure", DefaultRooms: []string{"lobby"}}}),
		websocket.WithAuthenticate(auth),
		populateECDH(&enc),
	)
	o := srv.Helper().Options()
	if o.Path != "/secure" || len(o.DefaultRooms) != 1 || !o.RequireEncryption {
		t.Fatalf("options %+v", o)
	}
	ctx := ctxT(t)
	c, err := fxtest.DialEncrypted(ctx, srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Abort() })
	cd, err := c.Authenticate(ctx, token("cy"))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := srv.Helper().SendToRoom("lobby", "news", "hi"); n != 1 || err != nil {
		t.Fatalf("SendToRoom: %d %v", n, err)
	}
	if m, err := c.ExpectDecrypted(ctx, "news"); err != nil || string(m.Data) != `"hi"` {
		t.Fatalf("news: %s %v", m.Data, err)
	}
	_ = c.Close()
	waitFor(t, func() bool { return enc.Session(cd.ID) == nil })
}

// TestECDHEncryptionStopsWithGoodbye: stopping the app closes encrypted
// clients with 1001 and drops their keys.
func TestECDHEncryptionStopsWithGoodbye(t *testing.T) {
	var enc *encryption.ECDH
	srv, err := fxtest.Start(websocket.WithAuthenticate(auth), websocket.WithECDHEncryption(), populateECDH(&enc))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	c, err := fxtest.DialEncrypted(ctx, srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Authenticate(ctx, token("dee")); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := c.ExpectClose(ctx); code != 1001 {
		t.Errorf("close %d, want 1001", code)
	}
	if enc.Len() != 0 {
		t.Errorf("%d keys after stop", enc.Len())
	}
	_ = c.Abort()
	goleak.VerifyNone(t)
}

// TestECDHEncryptionMisuse: every wrong use fails fx.New with an error that
// says what is wrong, instead of serving clients in clear.
func TestECDHEncryptionMisuse(t *testing.T) {
	handshake := func(context.Context, helper.HandshakeRequest) (*helper.HandshakeResult, error) { return nil, nil }
	cases := []struct {
		name string
		opts []fx.Option
		want string
	}{
		{"two options", []fx.Option{websocket.Module, websocket.WithAuthenticate(auth),
			websocket.WithECDHEncryption(encryption.Options{}, encryption.Options{})}, "at most one"},
		{"twice", []fx.Option{websocket.Module, websocket.WithAuthenticate(auth),
			websocket.WithECDHEncryption(), websocket.WithECDHEncryption()}, "already provided"},
		{"own handshake too", []fx.Option{websocket.Module, websocket.WithAuthenticate(auth),
			websocket.WithHandshake(handshake), websocket.WithECDHEncryption()}, "already provided"},
		// fx decorations do not cross into sibling modules.
		{"out of reach", []fx.Option{websocket.Module, websocket.WithAuthenticate(auth),
			fx.Module("security", websocket.WithECDHEncryption())}, "does not reach websocket.Module"},
		{"out of reach, encryption already required", []fx.Option{websocket.Module, websocket.WithAuthenticate(auth),
			websocket.WithServerOptions(websocket.ServerOptions{Options: helper.Options{RequireEncryption: true}}),
			fx.Module("security", websocket.WithECDHEncryption())}, "does not reach websocket.Module"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			app := fx.New(append([]fx.Option{fx.NopLogger}, tc.opts...)...)
			err := app.Err()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("fx.New error %v, want one containing %q", err, tc.want)
			}
		})
	}
	// Inside a module that contains websocket.Module, it reaches it.
	app := fx.New(fx.NopLogger, fx.Module("server", websocket.Module, websocket.WithAuthenticate(auth), websocket.WithECDHEncryption()))
	if err := app.Err(); err != nil {
		t.Fatalf("nested: %v", err)
	}
}

// The message handler can tell a sealed message from a plain one that an
// encrypted client sent (RequireEncryption seals what the server sends
// only), and sealed messages that cannot be opened are counted (from an
// encrypted-chat trial: neither could be seen).
func TestECDHEncryptionTellsSealedFromPlain(t *testing.T) {
	type seen struct {
		event     string
		encrypted bool
	}
	got := make(chan seen, 4)
	srv := fxtest.StartServer(t,
		websocket.WithAuthenticate(auth),
		websocket.WithMessageHandler(func(_ context.Context, req helper.MessageRequest) error {
			got <- seen{req.Message.Event, req.Encrypted}
			return nil
		}),
		websocket.WithECDHEncryption(),
	)
	ctx := ctxT(t)
	c, err := fxtest.DialEncrypted(ctx, srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Abort() })
	if _, err := c.Authenticate(ctx, token("ann")); err != nil {
		t.Fatal(err)
	}
	if err := c.EmitEncrypted("sealed", 1); err != nil {
		t.Fatal(err)
	}
	if err := c.Emit("plain", 2); err != nil {
		t.Fatal(err)
	}
	if err := c.Emit(protocol.EventEncrypted, map[string]string{"iv": "AAAAAAAAAAAAAAAA", "ct": "bm90IHNlYWxlZA=="}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []seen{{"sealed", true}, {"plain", false}} {
		select {
		case s := <-got:
			if s != want {
				t.Fatalf("handler saw %+v, want %+v", s, want)
			}
		case <-ctx.Done():
			t.Fatalf("handler never saw %q", want.event)
		}
	}
	waitFor(t, func() bool { return srv.Helper().Stats().Unopened == 1 })
}

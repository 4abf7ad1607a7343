package websocket

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/fxws/websocket/encryption"
	"github.com/fxws/websocket/helper"
	"go.uber.org/fx"
)

// ECDHKey: the *encryption.ECDH that WithECDHEncryption provides, for
// constructors that want to look at it (ECDH.Len, the number of keys held;
// ECDH.Session, a client's key). An extension: Ignis has no such key. The
// module does not consume it.
const ECDHKey = `name:"@app/websocket/ecdh"`

// WithECDHEncryption turns on the built-in Ignis ECDH scheme (package
// encryption): browser clients written for Ignis send their P-256 public key
// with authenticate, get `serverPublicKey` and `salt` in `connected`, and
// receive every later message as an AES-GCM sealed `encrypted` event. It
//
//   - sets ServerOptions.RequireEncryption (on the bound options, or on the
//     defaults when none are bound);
//   - provides an *encryption.ECDH under ECDHKey and, from it, the handshake
//     handler, the outbound transformer and the inbound transformer (which
//     opens the `encrypted` events such clients may send: our extension);
//   - wraps the app's client-disconnected handler, if it binds one, so that
//     the client's key is dropped first and the app's handler still runs.
//
// opts is at most one encryption.Options; none means the Ignis scheme.
//
// The app must not bind a handshake handler or a transformer itself (fx
// reports them as provided twice). Put WithECDHEncryption at the level of
// websocket.Module or above it: its changes to the options and to the
// disconnect handler are fx decorations, which reach only the module they
// are declared in and its children. Placed out of reach, it fails fx.New
// rather than leaving clients unencrypted.
func WithECDHEncryption(opts ...encryption.Options) fx.Option {
	if len(opts) > 1 {
		return fx.Error(fmt.Errorf("websocket: WithECDHEncryption takes at most one encryption.Options, got %d", len(opts)))
	}
	var o encryption.Options
	if len(opts) == 1 {
		o = opts[0]
	}
	return fx.Options(
		fx.Provide(func() ecdhOut { return newECDHOut(encryption.NewECDH(o)) }),
		fx.Decorate(requireEncryption),
		fx.Decorate(forgetKeysOnDisconnect),
		fx.Invoke(checkEncryptionReached),
	)
}

// ecdhOut is what WithECDHEncryption provides. The tags are the values of
// ECDHKey, HandshakeHandlerKey, OutboundTransformerKey and
// InboundTransformerKey (struct tags cannot name constants; the tests of
// WithECDHEncryption fail if they drift).
type ecdhOut struct {
	fx.Out

	ECDH      *encryption.ECDH               `name:"@app/websocket/ecdh"`
	Handshake helper.HandshakeFunc           `name:"@app/websocket/handshake-handler"`
	Outbound  helper.OutboundTransformerFunc `name:"@app/websocket/outbound-transformer"`
	Inbound   helper.InboundTransformerFunc  `name:"@app/websocket/inbound-transformer"`
	Wiring    *ecdhWiring
}

// ecdhWiring records which decorations ran, so that the app fails when
// they did not reach the module instead of serving without them.
type ecdhWiring struct {
	options, disconnect atomic.Bool
}

func newECDHOut(e *encryption.ECDH) ecdhOut {
	return ecdhOut{ECDH: e, Handshake: e.Handshake, Outbound: e.Transform, Inbound: e.TransformInbound, Wiring: &ecdhWiring{}}
}

type serverOptionsIn struct {
	fx.In
	Wiring  *ecdhWiring
	Options ServerOptions `name:"@app/websocket/server-options" optional:"true"`
}

type serverOptionsOut struct {
	fx.Out
	Options ServerOptions `name:"@app/websocket/server-options"`
}

// requireEncryption decorates the bound options (or the zero value, which
// is every default) with RequireEncryption.
func requireEncryption(in serverOptionsIn) serverOptionsOut {
	in.Wiring.options.Store(true)
	o := in.Options
	o.RequireEncryption = true
	return serverOptionsOut{Options: o}
}

type disconnectIn struct {
	fx.In
	Wiring *ecdhWiring
	ECDH   *encryption.ECDH              `name:"@app/websocket/ecdh"`
	Next   helper.ClientDisconnectedFunc `name:"@app/websocket/client-disconnected-handler" optional:"true"`
}

type disconnectOut struct {
	fx.Out
	Handler helper.ClientDisconnectedFunc `name:"@app/websocket/client-disconnected-handler"`
}

// forgetKeysOnDisconnect composes the app's disconnect handler (if any)
// with dropping the client's key; the key goes first, so an app handler
// that fails or is slow never keeps it.
func forgetKeysOnDisconnect(in disconnectIn) disconnectOut {
	in.Wiring.disconnect.Store(true)
	return disconnectOut{Handler: in.ECDH.WrapClientDisconnected(in.Next)}
}

// errEncryptionNotReached is returned when the decorations did not reach
// the module (WithECDHEncryption declared in a sibling fx.Module).
var errEncryptionNotReached = errors.New("websocket: WithECDHEncryption does not reach websocket.Module " +
	"(its fx decorations apply only to the module it is declared in and below): " +
	"declare it at the level of websocket.Module or above")

// checkEncryptionReached fails the app when the helper was built without
// the decorated options (clients would be served in clear) or without the
// decorated disconnect handler (keys would outlive their clients). The
// helper is built before this runs, and the decorations with it when they
// are in reach.
func checkEncryptionReached(h *helper.WebSocketServerHelper, w *ecdhWiring) error {
	if !h.Options().RequireEncryption || !w.options.Load() || !w.disconnect.Load() {
		return errEncryptionNotReached
	}
	return nil
}

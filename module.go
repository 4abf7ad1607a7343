package websocket

import (
	"fmt"
	"net"
	"net/http"
	"reflect"

	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/component"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/internal/nilref"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"
	"go.uber.org/zap"
)

// Module is the WebSocket server as an fx module. It consumes the values
// bound under the …Key constants (only the authenticate handler is
// required), provides *helper.WebSocketServerHelper to the whole app and a
// *HelperRef for handlers that need to send, and runs the server for the
// app's lifecycle: OnStart verifies Redis, starts the helper and starts
// serving (on the app's HTTP mux if it binds one, otherwise on its own
// listener); OnStop closes every client with 1001 and stops within the stop
// timeout.
var Module = fx.Module("websocket",
	fx.Provide(component.NewHelperRef, component.New),
	// The server runs even when no other part of the app asks for it.
	fx.Invoke(func(*helper.WebSocketServerHelper) {}),
)

// ServerOptions configures the module: every helper.Options setting
// (embedded) plus Addr, ReadHeaderTimeout, RedisPingTimeout and
// RedisBroker. Zero values mean the documented defaults. Bind it with
// WithServerOptions or under ServerOptionsKey; supplied without the name it
// would be ignored, so the module refuses to start then.
type ServerOptions = component.Options

// HelperRef lets a handler reach the helper it belongs to: a handler's
// constructor cannot take *helper.WebSocketServerHelper (the helper depends
// on the handler), so it takes a *HelperRef and calls Helper() when invoked.
type HelperRef = component.HelperRef

// bind provides v under the fx name of key, typed as T (an interface stays
// an interface, which fx.Supply would not keep). A nil v is an error: bound,
// it would read as "not bound" and quietly get the default (a mux of nil
// makes the module listen on its own address), or panic at the first call.
func bind[T any](v T, key string) fx.Option {
	if nilref.Is(v) {
		what := fmt.Sprintf("%T", v)
		if any(v) == nil { // an interface holding nothing: %T says "<nil>"
			what = reflect.TypeFor[T]().String()
		}
		return fx.Error(fmt.Errorf("websocket: a nil %s bound under %s: bind a value, or leave the binding out for the default", what, key))
	}
	return fx.Provide(fx.Annotate(func() T { return v }, fx.ResultTags(key)))
}

// WithServerOptions binds the module's options (ServerOptionsKey).
func WithServerOptions(o ServerOptions) fx.Option { return bind(o, ServerOptionsKey) }

// WithRedisConnection binds the Redis client the instances share
// (RedisConnectionKey). The module pings it on start and never closes it.
func WithRedisConnection(c redis.UniversalClient) fx.Option { return bind(c, RedisConnectionKey) }

// WithAuthenticate binds the authenticate handler (AuthenticateHandlerKey),
// the one required binding. Bound otherwise, it must be a
// helper.AuthenticateFunc under that name: fx matches both, and reports
// "missing type: helper.AuthenticateFunc[name=…]" for a handler provided
// without the name or as a plain func type (convert it:
// helper.AuthenticateFunc(f)).
func WithAuthenticate(fn helper.AuthenticateFunc) fx.Option {
	return bind(fn, AuthenticateHandlerKey)
}

// WithValidateRoom binds the validate-room handler (ValidateRoomHandlerKey).
func WithValidateRoom(fn helper.ValidateRoomFunc) fx.Option {
	return bind(fn, ValidateRoomHandlerKey)
}

// WithClientConnected binds the client-connected handler
// (ClientConnectedHandlerKey).
func WithClientConnected(fn helper.ClientConnectedFunc) fx.Option {
	return bind(fn, ClientConnectedHandlerKey)
}

// WithClientDisconnected binds the client-disconnected handler
// (ClientDisconnectedHandlerKey).
func WithClientDisconnected(fn helper.ClientDisconnectedFunc) fx.Option {
	return bind(fn, ClientDisconnectedHandlerKey)
}

// WithRoomsChanged binds the rooms-changed handler (RoomsChangedHandlerKey).
// It is told of the server's changes of a client's rooms too (JoinRoom,
// AddUserToRooms, …) with ServerOptions.RoomsChangedByServer.
func WithRoomsChanged(fn helper.RoomsChangedFunc) fx.Option {
	return bind(fn, RoomsChangedHandlerKey)
}

// WithMessageHandler binds the application-message handler
// (MessageHandlerKey).
func WithMessageHandler(fn helper.MessageFunc) fx.Option { return bind(fn, MessageHandlerKey) }

// WithOutboundTransformer binds the outbound transformer
// (OutboundTransformerKey).
func WithOutboundTransformer(fn helper.OutboundTransformerFunc) fx.Option {
	return bind(fn, OutboundTransformerKey)
}

// WithInboundTransformer binds the inbound transformer
// (InboundTransformerKey), which decrypts `encrypted` events from clients.
func WithInboundTransformer(fn helper.InboundTransformerFunc) fx.Option {
	return bind(fn, InboundTransformerKey)
}

// WithHandshake binds the encryption handshake handler (HandshakeHandlerKey).
func WithHandshake(fn helper.HandshakeFunc) fx.Option { return bind(fn, HandshakeHandlerKey) }

// WithBrokerRestored binds the broker-restored handler
// (BrokerRestoredHandlerKey).
func WithBrokerRestored(fn helper.BrokerRestoredFunc) fx.Option {
	return bind(fn, BrokerRestoredHandlerKey)
}

// WithHTTPMux binds the app's mux (HTTPMuxKey): the module mounts its handler
// on it and does not listen itself.
func WithHTTPMux(mux *http.ServeMux) fx.Option { return bind(mux, HTTPMuxKey) }

// WithListener binds a listener for the module's own server (ListenerKey).
func WithListener(l net.Listener) fx.Option { return bind(l, ListenerKey) }

// WithBroker binds a custom cross-instance broker (BrokerKey).
func WithBroker(b broker.Broker) fx.Option { return bind(b, BrokerKey) }

// WithLogger binds a logger for the module only (LoggerKey).
func WithLogger(l *zap.Logger) fx.Option { return bind(l, LoggerKey) }

package websocket

// Binding keys: the fx names under which Module consumes values. Each
// constant is a complete fx tag (`name:"…"`), ready for fx.ResultTags:
//
//	fx.Provide(fx.Annotate(newAuthenticator, fx.ResultTags(websocket.AuthenticateHandlerKey)))
//
// The names are the Ignis WebSocketBindingKeys (`@app/websocket/…`), so a
// value bound under a key in Ignis is provided under the same key here. The
// With… helpers in module.go do the annotation for you.
//
// Only AuthenticateHandlerKey is required; an app that provides nothing
// under it fails in fx.New (and fx.ValidateApp) with an error naming it.
// Every other binding is optional and has the default documented on it.
const (
	// ServerOptionsKey: a ServerOptions value. Optional; absent means
	// every default (path /ws, own listener on :3000, rooms ws-default and
	// ws-notification, the timeouts of the original).
	ServerOptionsKey = `name:"@app/websocket/server-options"`

	// RedisConnectionKey: a redis.UniversalClient (go-redis v9: a single
	// node, Sentinel or Cluster client) that carries envelopes to the other
	// instances on the Ignis channels. Optional; absent means the in-process
	// broker, a single instance (a warning says so). The module pings it on
	// start and never closes it: the client belongs to the app. Exclusive
	// with BrokerKey. A nil client counts as none: fx cannot tell it
	// from one absent.
	RedisConnectionKey = `name:"@app/websocket/redis-connection"`

	// AuthenticateHandlerKey: a helper.AuthenticateFunc. Required. It
	// decides who may use the server: a nil result rejects the client
	// (4003 "Authentication failed"). Unlike the optional handlers, it is
	// taken in that type only (convert a func: helper.AuthenticateFunc(f)),
	// which is what lets fx.ValidateApp report it missing.
	AuthenticateHandlerKey = `name:"@app/websocket/authenticate-handler"`

	// ValidateRoomHandlerKey: a helper.ValidateRoomFunc returning the
	// subset of requested rooms a client may join. Optional; absent means
	// clients cannot join rooms themselves (server-side joins still work).
	ValidateRoomHandlerKey = `name:"@app/websocket/validate-room-handler"`

	// ClientConnectedHandlerKey: a helper.ClientConnectedFunc, called after
	// a client authenticated and got `connected`. Optional; absent means
	// nothing is called.
	ClientConnectedHandlerKey = `name:"@app/websocket/client-connected-handler"`

	// ClientDisconnectedHandlerKey: a helper.ClientDisconnectedFunc, called
	// after any client is gone. Optional; absent means nothing is called.
	ClientDisconnectedHandlerKey = `name:"@app/websocket/client-disconnected-handler"`

	// RoomsChangedHandlerKey: a helper.RoomsChangedFunc, told of each join
	// or leave of a client's own that changed its rooms, and with
	// ServerOptions.RoomsChangedByServer of the server's changes too (an
	// extension: no Ignis key). Optional; absent means nothing is called.
	RoomsChangedHandlerKey = `name:"@app/websocket/rooms-changed-handler"`

	// MessageHandlerKey: a helper.MessageFunc for application events.
	// Optional; absent means application events are dropped.
	MessageHandlerKey = `name:"@app/websocket/message-handler"`

	// OutboundTransformerKey: a helper.OutboundTransformerFunc that rewrites
	// each message to an encrypted client (e.g. into an `encrypted` event).
	// Optional; absent means encrypted clients get messages as they are.
	OutboundTransformerKey = `name:"@app/websocket/outbound-transformer"`

	// InboundTransformerKey: a helper.InboundTransformerFunc that turns an
	// `encrypted` event from an encrypted client into the message it stands
	// for (an extension: Ignis has no such key; clients of the original
	// send in clear). Optional; absent means such events go to the message
	// handler as they are, as in the original.
	InboundTransformerKey = `name:"@app/websocket/inbound-transformer"`

	// HandshakeHandlerKey: a helper.HandshakeFunc that negotiates a
	// client's encryption during authentication. Optional, but required
	// when ServerOptions.RequireEncryption is set (fx.New fails otherwise).
	HandshakeHandlerKey = `name:"@app/websocket/handshake-handler"`

	// BrokerRestoredHandlerKey: a helper.BrokerRestoredFunc, called after
	// the Redis broker has subscribed again following the loss of its
	// subscription (a Redis restart, a failover, a cut connection), when
	// what was published meanwhile never reached this instance's clients:
	// where an app sends its state again and rewrites its presence
	// entries (an extension: no Ignis key). Optional; absent means nothing
	// is called.
	BrokerRestoredHandlerKey = `name:"@app/websocket/broker-restored-handler"`

	// HTTPMuxKey: an *http.ServeMux on which the module mounts its handler
	// at ServerOptions.Path, for an app with HTTP routes of its own on the
	// same port. Optional; absent means the module listens on
	// ServerOptions.Addr with its own http.Server. With a mux, the app
	// serves the mux itself, or binds a listener too (ListenerKey) and the
	// module serves the mux on it (as fxtest does), with
	// ServerOptions.ReadHeaderTimeout and a 2-minute idle timeout between
	// requests, but no body or response timeout: routes that read large
	// bodies bound them themselves (http.MaxBytesReader, a context), or
	// the app serves the mux with its own http.Server. Routes that need the
	// helper cannot be registered by the mux's constructor (the helper
	// depends on the mux: fx reports a cycle): provide the mux empty
	// (fx.Annotate(http.NewServeMux, fx.ResultTags(HTTPMuxKey))) and
	// register them from an fx.Invoke.
	HTTPMuxKey = `name:"@app/websocket/http-mux"`

	// ListenerKey: a net.Listener the module's own http.Server serves on
	// instead of listening on ServerOptions.Addr (socket activation, tests
	// on an ephemeral port), serving the app's mux when HTTPMuxKey is bound
	// too. Optional. The module closes it on stop.
	ListenerKey = `name:"@app/websocket/listener"`

	// BrokerKey: any broker.Broker (a custom transport, or a
	// broker.MemoryHub's broker to run several instances in one process).
	// Optional; absent means Redis when RedisConnectionKey is given, else
	// the in-process broker. The helper closes it on stop. Exclusive with
	// RedisConnectionKey.
	BrokerKey = `name:"@app/websocket/broker"`

	// LoggerKey: a *zap.Logger for the module only. Optional; absent means
	// the app's unnamed *zap.Logger if there is one, else no logging. The
	// module never provides a logger; it scopes the one it gets with
	// Named("websocket").
	LoggerKey = `name:"@app/websocket/logger"`
)

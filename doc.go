// Package websocket is a production WebSocket server for go.uber.org/fx
// applications that speaks the protocol of the Ignis WebSocket component:
// its browser clients, its emitters and its servers can share one Redis with
// this one.
//
// Add Module to an app and bind at least an authenticate handler:
//
//	fx.New(
//		websocket.Module,
//		websocket.WithAuthenticate(authenticate),     // required
//		websocket.WithValidateRoom(validateRoom),     // optional
//		websocket.WithRedisConnection(redisClient),   // optional: several instances
//		fx.Provide(NewNotifier),                      // takes *helper.WebSocketServerHelper
//	).Run()
//
// Every value the module consumes has a name (the Ignis binding keys, the
// …Key constants); the With… helpers bind a value under its name, and
// fx.Annotate with fx.ResultTags(websocket.…Key) binds a constructor's
// result. The module provides *helper.WebSocketServerHelper, which any
// constructor can take to send messages, and *HelperRef for handlers that
// need to send (a handler cannot take the helper it is part of).
//
// WithECDHEncryption turns on the built-in Ignis ECDH scheme (package
// encryption) in one option: encryption required, handshake, sealed
// delivery, keys dropped on disconnect.
//
// Without an HTTP mux the module listens on ServerOptions.Addr (default
// ":3000"); with one (HTTPMuxKey) it mounts itself at ServerOptions.Path
// (default "/ws") and the app serves the mux. Without Redis it runs on an
// in-process broker: one instance. The fxtest package starts apps on
// ephemeral ports and drives them with a protocol client.
package websocket

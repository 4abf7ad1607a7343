// Package component is the fx glue of the WebSocket module: it gathers the
// values an application binds under the module's names (see the websocket
// package's binding keys), checks them, builds the server helper without any
// I/O, and ties its life to the fx lifecycle: OnStart verifies Redis,
// starts the helper and starts serving; OnStop shuts down gracefully.
//
// Applications use websocket.Module; this package is what it is made of.
package component

import (
	"context"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/broker/redisbroker"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/internal/bounded"
	"github.com/fxws/websocket/internal/logthrottle"
	"github.com/fxws/websocket/internal/nilref"
	"github.com/fxws/websocket/internal/redisready"
	"github.com/fxws/websocket/protocol"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"
	"go.uber.org/zap"
)

// Params are the module's dependencies. The name tags are the binding keys
// of the websocket package (bindings.go), which documents each one; only the
// authenticate handler is required.
type Params struct {
	// fx.In makes Params an fx parameter object: fx fills each field from the
	// container by its type and name tag.
	fx.In

	// Lifecycle gets the server's hooks: OnStart checks Redis, starts the
	// helper and serves; OnStop shuts it down gracefully.
	Lifecycle fx.Lifecycle
	// Ref, when provided (websocket.Module does), is filled with the helper.
	Ref *HelperRef `optional:"true"`

	// Options are the server options (ServerOptionsKey); absent, every
	// default.
	Options Options `name:"@app/websocket/server-options" optional:"true"`
	// Redis carries envelopes to the other instances; nil means Broker if
	// bound, else the in-process broker (a single instance).
	Redis redis.UniversalClient `name:"@app/websocket/redis-connection" optional:"true"`
	// UnnamedOptions catches options supplied without the name
	// (fx.Supply(websocket.ServerOptions{…})), which would otherwise be
	// ignored without a word.
	UnnamedOptions Options `optional:"true"`

	// Authenticate decides who may use the server: the one required binding.
	Authenticate helper.AuthenticateFunc `name:"@app/websocket/authenticate-handler"`
	// ValidateRoom picks the rooms a client's join may enter; absent, clients
	// cannot join rooms themselves.
	ValidateRoom helper.ValidateRoomFunc `name:"@app/websocket/validate-room-handler" optional:"true"`
	// ClientConnected is called once a client has got `connected`.
	ClientConnected helper.ClientConnectedFunc `name:"@app/websocket/client-connected-handler" optional:"true"`
	// ClientDisconnected is called after any client is gone.
	ClientDisconnected helper.ClientDisconnectedFunc `name:"@app/websocket/client-disconnected-handler" optional:"true"`
	// RoomsChanged is told of each join or leave of a client's own that
	// changed its rooms, and with Options.RoomsChangedByServer of the
	// server's changes too.
	RoomsChanged helper.RoomsChangedFunc `name:"@app/websocket/rooms-changed-handler" optional:"true"`
	// Message handles application events; absent, they are dropped.
	Message helper.MessageFunc `name:"@app/websocket/message-handler" optional:"true"`
	// OutboundTransformer rewrites each message to an encrypted client.
	OutboundTransformer helper.OutboundTransformerFunc `name:"@app/websocket/outbound-transformer" optional:"true"`
	// InboundTransformer opens the `encrypted` events of encrypted clients.
	InboundTransformer helper.InboundTransformerFunc `name:"@app/websocket/inbound-transformer" optional:"true"`
	// Handshake negotiates a client's encryption; required with
	// Options.RequireEncryption.
	Handshake helper.HandshakeFunc `name:"@app/websocket/handshake-handler" optional:"true"`
	// BrokerRestored is told that the broker subscribed again after losing
	// its subscription.
	BrokerRestored helper.BrokerRestoredFunc `name:"@app/websocket/broker-restored-handler" optional:"true"`

	// Mux, when bound, gets the server's handler at Options.Path and the app
	// serves it, unless Listener is bound too: then the module serves the
	// mux, the app's routes with it, on Listener. Absent, the module serves
	// on a listener of its own.
	Mux *http.ServeMux `name:"@app/websocket/http-mux" optional:"true"`
	// Listener is served by the module's own http.Server instead of
	// Options.Addr (socket activation, ephemeral test ports), with Mux as
	// its handler when that is bound.
	Listener net.Listener `name:"@app/websocket/listener" optional:"true"`
	// Broker replaces the Redis and in-process brokers: a custom transport,
	// or a MemoryHub's broker for several instances in one process.
	Broker broker.Broker `name:"@app/websocket/broker" optional:"true"`

	// Logger is the module's own logger; AppLogger, the app's unnamed one,
	// used when Logger is absent.
	Logger    *zap.Logger `name:"@app/websocket/logger" optional:"true"`
	AppLogger *zap.Logger `optional:"true"`

	// Loose takes the same bindings in the types they are easily given in.
	Loose LooseBindings
}

// LooseBindings are the bindings of Params under the same names, in the
// types they are easily given in by mistake: redis.NewClient returns a
// *redis.Client, the options' fields are documented on helper.Options,
// and a method value or a func literal has an unnamed func type, not the
// helper's named one. fx matches type and name exactly, so
// without these such a binding would be ignored without a word: a server
// with no Redis running alone, an "encrypted" client sent plain text. New
// takes them as if bound in the right type, and fails if a key is bound in
// both. (The authenticate handler is required, so fx itself reports one
// bound in another type as missing.)
type LooseBindings struct {
	// fx.In makes LooseBindings an fx parameter object: fx fills each field
	// from the container by its type and name tag.
	fx.In

	// RedisClient and RedisCluster take the Redis connection in the types
	// go-redis's constructors return.
	RedisClient  *redis.Client        `name:"@app/websocket/redis-connection" optional:"true"`
	RedisCluster *redis.ClusterClient `name:"@app/websocket/redis-connection" optional:"true"`

	// The server options as the helper's (the fields go doc shows), or
	// behind a pointer.
	HelperOptions  helper.Options `name:"@app/websocket/server-options" optional:"true"`
	OptionsPointer *Options       `name:"@app/websocket/server-options" optional:"true"`

	// The optional handlers in unnamed func types, as a method value or a
	// func literal has them.
	ValidateRoom        func(context.Context, helper.ValidateRoomRequest) ([]string, error)             `name:"@app/websocket/validate-room-handler" optional:"true"`
	ClientConnected     func(context.Context, helper.ClientInfo) error                                  `name:"@app/websocket/client-connected-handler" optional:"true"`
	ClientDisconnected  func(context.Context, helper.ClientInfo) error                                  `name:"@app/websocket/client-disconnected-handler" optional:"true"`
	RoomsChanged        func(context.Context, helper.RoomsChangedRequest) error                         `name:"@app/websocket/rooms-changed-handler" optional:"true"`
	Message             func(context.Context, helper.MessageRequest) error                              `name:"@app/websocket/message-handler" optional:"true"`
	OutboundTransformer func(context.Context, helper.OutboundRequest) (*protocol.Message, error)        `name:"@app/websocket/outbound-transformer" optional:"true"`
	InboundTransformer  func(context.Context, helper.InboundRequest) (protocol.Message, error)          `name:"@app/websocket/inbound-transformer" optional:"true"`
	Handshake           func(context.Context, helper.HandshakeRequest) (*helper.HandshakeResult, error) `name:"@app/websocket/handshake-handler" optional:"true"`
	BrokerRestored      func(context.Context, helper.BrokerRestoredInfo) error                          `name:"@app/websocket/broker-restored-handler" optional:"true"`
}

// tighten moves what came in loose types to p's own fields.
func (p *Params) tighten() error {
	var errs []error
	take := func(dst, src any, key string) {
		d, v := reflect.ValueOf(dst).Elem(), reflect.ValueOf(src)
		if v.IsNil() { // absent (fx gives no way to tell a nil bound)
			return
		}
		if !d.IsNil() {
			errs = append(errs, fmt.Errorf("%s is bound twice, as %s and as %s: bind it once", key, d.Type(), v.Type()))
			return
		}
		d.Set(v.Convert(d.Type()))
	}
	l := p.Loose
	// Options are values: one left zero cannot be told from one absent,
	// and is the defaults either way.
	for _, o := range []struct {
		set  bool
		v    Options
		kind string
	}{
		{!reflect.ValueOf(l.HelperOptions).IsZero(), Options{Options: l.HelperOptions}, "helper.Options"},
		{l.OptionsPointer != nil, *orZero(l.OptionsPointer), "*websocket.ServerOptions"},
	} {
		if !o.set {
			continue
		}
		if !reflect.ValueOf(p.Options).IsZero() {
			errs = append(errs, fmt.Errorf("%s is bound twice, as websocket.ServerOptions and as %s: bind it once", keyServerOptions, o.kind))
			continue
		}
		p.Options = o.v
	}
	take(&p.Redis, l.RedisClient, keyRedis)
	take(&p.Redis, l.RedisCluster, keyRedis)
	take(&p.ValidateRoom, l.ValidateRoom, "@app/websocket/validate-room-handler")
	take(&p.ClientConnected, l.ClientConnected, "@app/websocket/client-connected-handler")
	take(&p.ClientDisconnected, l.ClientDisconnected, "@app/websocket/client-disconnected-handler")
	take(&p.RoomsChanged, l.RoomsChanged, "@app/websocket/rooms-changed-handler")
	take(&p.Message, l.Message, "@app/websocket/message-handler")
	take(&p.OutboundTransformer, l.OutboundTransformer, "@app/websocket/outbound-transformer")
	take(&p.InboundTransformer, l.InboundTransformer, "@app/websocket/inbound-transformer")
	take(&p.Handshake, l.Handshake, keyHandshake)
	take(&p.BrokerRestored, l.BrokerRestored, "@app/websocket/broker-restored-handler")
	p.Loose = LooseBindings{}
	return errors.Join(errs...)
}

// orZero is *p, or a zero value for a nil p.
func orZero[T any](p *T) *T {
	if p == nil {
		return new(T)
	}
	return p
}

// Key names, for error messages (the websocket package exports them as tags).
const (
	keyServerOptions = "@app/websocket/server-options"
	keyRedis         = "@app/websocket/redis-connection"
	keyAuthenticate  = "@app/websocket/authenticate-handler"
	keyHandshake     = "@app/websocket/handshake-handler"
	keyMux           = "@app/websocket/http-mux"
	keyListener      = "@app/websocket/listener"
	keyBroker        = "@app/websocket/broker"
)

// New validates p, builds the helper and registers the lifecycle hooks. It
// does no I/O: Redis is contacted, and sockets are opened, in OnStart.
func New(p Params) (*helper.WebSocketServerHelper, error) {
	if err := p.tighten(); err != nil {
		return nil, fmt.Errorf("websocket: %w", err)
	}
	if err := validate(p); err != nil {
		return nil, err
	}
	opts := p.Options.withDefaults()

	log := p.Logger
	if log == nil {
		log = p.AppLogger
	}
	if log == nil {
		log = zap.NewNop()
	}
	log = log.Named("websocket")

	b := p.Broker
	if p.Redis != nil {
		b = newRedisBroker(p.Redis, opts.RedisBroker, log)
	}
	if b == nil {
		log.Warn("no Redis connection provided: using the in-process broker; " +
			"this server is a single instance and its sends reach only its own clients (bind " + keyRedis + " to run several)")
		b = broker.NewMemory()
	}

	h, err := helper.New(helper.Config{
		Options: opts.Options,
		Handlers: helper.Handlers{
			Authenticate:        p.Authenticate,
			ValidateRoom:        p.ValidateRoom,
			ClientConnected:     p.ClientConnected,
			ClientDisconnected:  p.ClientDisconnected,
			RoomsChanged:        p.RoomsChanged,
			Message:             p.Message,
			Handshake:           p.Handshake,
			OutboundTransformer: p.OutboundTransformer,
			InboundTransformer:  p.InboundTransformer,
			BrokerRestored:      p.BrokerRestored,
		},
		Broker: b,
		Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("websocket: %w", err)
	}

	if p.Ref != nil {
		p.Ref.Set(h)
	}
	s := &server{h: h, opts: opts, redis: p.Redis, listener: p.Listener, log: log}
	if p.Mux != nil {
		if err := mount(p.Mux, h.Path(), h); err != nil {
			return nil, err
		}
		s.mux = p.Mux
	}
	p.Lifecycle.Append(fx.Hook{OnStart: s.start, OnStop: s.stop})
	return h, nil
}

// validate fails with an error that names the binding to fix.
func validate(p Params) error {
	var errs []error
	if p.Authenticate == nil {
		errs = append(errs, fmt.Errorf("no authenticate handler: provide a helper.AuthenticateFunc named %q (websocket.WithAuthenticate(f))", keyAuthenticate))
	}
	if err := p.Options.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("invalid server options (%s): %w", keyServerOptions, err))
	}
	if p.Options.RequireEncryption && p.Handshake == nil {
		errs = append(errs, fmt.Errorf("RequireEncryption is set but there is no handshake handler: provide a helper.HandshakeFunc named %q (websocket.WithHandshake)", keyHandshake))
	}
	if !reflect.ValueOf(p.UnnamedOptions).IsZero() {
		errs = append(errs, fmt.Errorf("server options were provided without the name %q, so they would be ignored: bind them with websocket.WithServerOptions, or fx.Annotate(…, fx.ResultTags(websocket.ServerOptionsKey))", keyServerOptions))
	}
	for _, b := range []struct {
		v    any
		key  string
		what string
	}{
		{p.Redis, keyRedis, "leave the binding out to run one instance on the in-process broker"},
		{p.Broker, keyBroker, "leave the binding out for the default broker"},
		{p.Listener, keyListener, "leave the binding out and the module listens on ServerOptions.Addr"},
	} {
		if b.v != nil && nilref.Is(b.v) {
			errs = append(errs, fmt.Errorf("the value bound as %s is a nil %T: bind a live one, or %s", b.key, b.v, b.what))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("websocket: %w", errors.Join(errs...))
	}
	if _, ok := p.Redis.(*redis.Ring); ok {
		errs = append(errs, fmt.Errorf("the Redis connection (%s) is a redis.Ring: %w", keyRedis, redisbroker.ErrRing))
	}
	// With a broker of the app's own (the test kit's hub, say) the Redis
	// broker's options are moot: one set of options may serve both.
	if p.Redis == nil && p.Broker == nil && !reflect.ValueOf(p.Options.RedisBroker).IsZero() {
		errs = append(errs, fmt.Errorf("ServerOptions.RedisBroker is set but no Redis connection is bound (%s; a nil client counts as none), so the server would run alone on the in-process broker: bind one (websocket.WithRedisConnection), or leave RedisBroker out", keyRedis))
	}
	if p.Redis != nil && p.Broker != nil {
		errs = append(errs, fmt.Errorf("both a Redis connection (%s) and a broker (%s) are provided: provide one", keyRedis, keyBroker))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("websocket: %w", errors.Join(errs...))
}

// mount registers h on mux, turning the mux's panic on a conflicting or
// malformed pattern into an error.
func mount(mux *http.ServeMux, path string, h http.Handler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("websocket: mount the handler at %q on the HTTP mux (%s): %v", path, keyMux, r)
		}
	}()
	mux.Handle(path, h)
	return nil
}

// idleHTTPTimeout closes the module's HTTP keep-alive connections idle
// this long between requests.
const idleHTTPTimeout = 2 * time.Minute

// server runs the helper for the lifecycle.
type server struct {
	h        *helper.WebSocketServerHelper
	opts     Options
	redis    redis.UniversalClient
	listener net.Listener
	// mux is the app's, with the helper mounted on it: the app serves it,
	// unless it bound a listener too, which the module then serves it on.
	mux *http.ServeMux
	log *zap.Logger

	srv    *http.Server
	served sync.WaitGroup
}

// start verifies Redis, starts the helper, then serves. It returns once the
// socket is bound; a bind error is returned here, not logged from a goroutine.
func (s *server) start(ctx context.Context) error {
	if s.redis != nil {
		if err := s.pingRedis(ctx); err != nil {
			if s.listener != nil {
				_ = s.listener.Close()
			}
			return err
		}
	}
	if err := s.h.Start(ctx); err != nil {
		if s.listener != nil {
			_ = s.listener.Close()
		}
		return err
	}
	var handler http.Handler = s.h
	if s.mux != nil {
		if s.listener == nil {
			s.log.Info("websocket handler mounted on the app's HTTP mux", zap.String("path", s.h.Path()))
			return nil
		}
		handler = s.mux
	}
	ln := s.listener
	if ln == nil {
		lc := ListenConfig(s.opts.ReadHeaderTimeout)
		var err error
		ln, err = lc.Listen(ctx, "tcp", s.opts.Addr)
		if err != nil {
			// The helper started: stop it so that nothing is left running.
			_ = s.h.Shutdown(ctx)
			return fmt.Errorf("websocket: listen on %s: %w", s.opts.Addr, err)
		}
	}
	s.srv = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: s.opts.ReadHeaderTimeout,
		// Keep-alive connections idle between requests (the app's routes,
		// on a mux it bound) are closed; upgraded ones are not its own.
		IdleTimeout: idleHTTPTimeout,
		ErrorLog:    HTTPErrorLog(s.log),
	}
	s.served.Add(1)
	go func() {
		defer s.served.Done()
		if err := s.h.Serve(s.srv, ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("websocket listener stopped", zap.Error(err))
		}
	}()
	s.log.Info("websocket server listening", zap.String("addr", ln.Addr().String()), zap.String("path", s.h.Path()))
	return nil
}

// pingRedis waits up to RedisPingTimeout for the Redis connection to answer
// PING, as the emitter waits for it (bounded.Runner.Retry): a Redis started
// alongside the app (compose, a pod) is waited for, LOADING and the like
// included; any other error answer (a password, an ACL) fails at once. A
// ping still pending when the wait ends goes on until the client's own
// timeouts, or until the app closes the client.
func (s *server) pingRedis(ctx context.Context) error {
	start := time.Now()
	err := bounded.New(2).Retry(ctx, s.opts.RedisPingTimeout, 0,
		func(ctx context.Context) error { return redisready.Ping(ctx, s.redis) },
		// Redis answered with an error (a password, an ACL): waiting will
		// not change it; nor will it bring a closed client back.
		redisready.Permanent)
	var gaveUp *bounded.GaveUp
	switch {
	case errors.As(err, &gaveUp):
		return fmt.Errorf("websocket: the Redis connection (%s) did not answer PING within %v: %w", keyRedis, gaveUp.Wait, gaveUp.Last)
	case err != nil:
		return fmt.Errorf("websocket: the Redis connection (%s) failed PING: %w", keyRedis, err)
	}
	s.log.Debug("redis ping", zap.Duration("took", time.Since(start)))
	return nil
}

// stop closes every client with 1001 first (the helper), then the listener,
// all within ctx, ending a little before it (bounded.Ahead) so that what
// outlasted the stop reaches the app as the hook's error.
func (s *server) stop(ctx context.Context) error {
	ctx, cancel := bounded.Ahead(ctx)
	defer cancel()
	var errs []error
	if err := s.h.Shutdown(ctx); err != nil {
		errs = append(errs, err)
	}
	if s.srv != nil {
		if err := s.srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("websocket: stop the listener: %w", err))
		}
		s.served.Wait()
	}
	err := errors.Join(errs...)
	if err != nil {
		// Logged too, for a stop context shorter than the margin needs
		// (fx reports only "context deadline exceeded" for a hook that
		// returns after its stop context ends).
		s.log.Error("websocket stop incomplete", zap.Error(err))
	}
	return err
}

// HTTPErrorLog is log as an http.Server's ErrorLog, at warn: refused
// accepts, TLS handshake errors, panics in handlers. The module's own
// server uses it; so may an app that serves the helper itself. (A
// standard logger that writes at info, under a logger raised to warn,
// drops every line: an operations trial found none arriving.) TLS
// handshake errors and accept errors, which come by the thousand in a
// flood of bad connections or when descriptors run out, are kept to one
// line a second each, with the count of those held back; every other line
// goes through.
func HTTPErrorLog(log *zap.Logger) *stdlog.Logger {
	return stdlog.New(&httpErrorWriter{log: log}, "", 0)
}

// httpErrorWriter writes net/http's error lines to a zap logger at warn.
type httpErrorWriter struct {
	log               *zap.Logger
	handshake, accept logthrottle.Throttle
}

func (w *httpErrorWriter) Write(p []byte) (int, error) {
	msg := strings.TrimRight(string(p), "\n")
	var t *logthrottle.Throttle
	switch {
	case strings.HasPrefix(msg, "http: TLS handshake error"):
		t = &w.handshake
	case strings.HasPrefix(msg, "http: Accept error"):
		t = &w.accept
	}
	if t == nil {
		w.log.Warn(msg)
		return len(p), nil
	}
	if ok, held := t.Allow(); ok {
		w.log.Warn(msg, zap.Uint64("suppressed", held))
	}
	return len(p), nil
}

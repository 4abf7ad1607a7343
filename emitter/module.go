package emitter

import (
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"
	"go.uber.org/zap"
)

// Binding keys: the fx names under which Module consumes values, ready for
// fx.ResultTags.
const (
	// RedisConnectionKey: the redis.UniversalClient to publish on.
	// Required. It is the same name as the server module's
	// (websocket.RedisConnectionKey), so a process running both binds its
	// client once. Module pings it on start and never closes it.
	RedisConnectionKey = `name:"@app/websocket/redis-connection"`
	// OptionsKey: an emitter Options value. Optional; absent means the
	// defaults (classic PUBLISH, 2 s publish timeout, 30 s ready timeout).
	OptionsKey = `name:"@app/websocket/emitter-options"`
)

// Module provides a *WebSocketEmitter to an fx app such as a worker:
//
//	fx.New(
//		emitter.Module,
//		emitter.WithRedisConnection(rdb),
//		fx.Invoke(func(e *emitter.WebSocketEmitter) { … }),
//	)
//
// OnStart waits for Redis to answer (Options.ReadyTimeout, bounded by the
// app's start timeout) and fails the start otherwise; OnStop logs. A
// missing Redis client fails fx.New with an error naming RedisConnectionKey.
var Module = fx.Module("websocket-emitter",
	fx.Provide(newFromFx),
)

type params struct {
	fx.In
	Lifecycle fx.Lifecycle
	Redis     redis.UniversalClient `name:"@app/websocket/redis-connection"`
	Options   Options               `name:"@app/websocket/emitter-options" optional:"true"`
	Logger    *zap.Logger           `optional:"true"`
}

func newFromFx(p params) (*WebSocketEmitter, error) {
	opts := p.Options
	if opts.Logger == nil {
		opts.Logger = p.Logger
	}
	e, err := New(p.Redis, opts)
	if err != nil {
		return nil, err
	}
	p.Lifecycle.Append(fx.Hook{OnStart: e.Start, OnStop: e.Stop})
	return e, nil
}

// WithRedisConnection binds the client Module publishes on. In an app that
// also runs the server module, bind the client once, with either this or
// websocket.WithRedisConnection: both use the same name.
func WithRedisConnection(c redis.UniversalClient) fx.Option { return bind(c, RedisConnectionKey) }

// WithOptions binds the emitter's Options.
func WithOptions(o Options) fx.Option { return bind(o, OptionsKey) }

func bind[T any](v T, key string) fx.Option {
	return fx.Provide(fx.Annotate(func() T { return v }, fx.ResultTags(key)))
}

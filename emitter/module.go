package emitter

import (
	"fmt"
	"reflect"

	"github.com/fxws/websocket/internal/nilref"
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
// missing Redis client fails fx.New with an error naming RedisConnectionKey;
// it may be bound as a redis.UniversalClient, a *redis.Client or a
// *redis.ClusterClient, as for the server module.
var Module = fx.Module("websocket-emitter",
	fx.Provide(newFromFx),
	// Built whether or not anything asks for it yet, so that a missing
	// Redis client fails fx.New rather than the first use.
	fx.Invoke(func(*WebSocketEmitter) {}),
)

type params struct {
	fx.In
	Lifecycle fx.Lifecycle
	Redis     redis.UniversalClient `name:"@app/websocket/redis-connection" optional:"true"`
	// The client as redis.NewClient and redis.NewClusterClient return it,
	// which the server module takes under the same name too: fx matches
	// types exactly, and an app running both binds its client once.
	RedisClient  *redis.Client        `name:"@app/websocket/redis-connection" optional:"true"`
	RedisCluster *redis.ClusterClient `name:"@app/websocket/redis-connection" optional:"true"`
	Options      Options              `name:"@app/websocket/emitter-options" optional:"true"`
	// UnnamedOptions catches options supplied without the name, which
	// would otherwise be ignored without a word.
	UnnamedOptions Options     `optional:"true"`
	Logger         *zap.Logger `optional:"true"`
}

// client is the one Redis client bound, in whichever type.
func (p params) client() (redis.UniversalClient, error) {
	var found []redis.UniversalClient
	for _, c := range []redis.UniversalClient{p.Redis, p.RedisClient, p.RedisCluster} {
		if !nilref.Is(c) {
			found = append(found, c)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("emitter: no Redis client bound under %s: bind one with emitter.WithRedisConnection (a redis.UniversalClient, *redis.Client or *redis.ClusterClient)", RedisConnectionKey)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("emitter: %s is bound more than once, in different types: bind it once", RedisConnectionKey)
}

func newFromFx(p params) (*WebSocketEmitter, error) {
	if !reflect.ValueOf(p.UnnamedOptions).IsZero() {
		return nil, fmt.Errorf("emitter: options were provided without the name %s, so they would be ignored: bind them with emitter.WithOptions", OptionsKey)
	}
	rdb, err := p.client()
	if err != nil {
		return nil, err
	}
	p.Redis = rdb
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

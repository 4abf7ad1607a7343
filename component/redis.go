package component

import (
	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/broker/redisbroker"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// newRedisBroker builds the cross-instance broker on the app's Redis client.
// It does no I/O: the broker connects in Start, called from OnStart after
// the module's bounded ping.
func newRedisBroker(client redis.UniversalClient, opts redisbroker.Options, log *zap.Logger) broker.Broker {
	if opts.Logger == nil {
		opts.Logger = log
	}
	return redisbroker.New(client, opts)
}

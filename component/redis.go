package component

import (
	"errors"
	"fmt"

	"github.com/fxws/websocket/broker"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// newRedisBroker builds the cross-instance broker on the app's Redis client.
// It must do no I/O: the broker connects in Start, called from OnStart after
// the module's bounded ping.
//
// TODO(redisbroker): the one place where the Redis broker is wired in. When
// broker/redisbroker lands, replace the body with
//
//	return redisbroker.New(client, redisbroker.Options{Logger: log}), nil
//
// (adjusting to its final Options). Until then a Redis connection fails the
// app at construction with a clear error rather than silently running on
// the single-instance broker.
func newRedisBroker(client redis.UniversalClient, log *zap.Logger) (broker.Broker, error) {
	_ = client
	_ = log
	return nil, fmt.Errorf("websocket: a Redis connection (%s) is provided but the Redis broker is not built into this version yet: %w", keyRedis, errRedisBrokerMissing)
}

var errRedisBrokerMissing = errors.New("broker/redisbroker not available")

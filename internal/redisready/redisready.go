// Package redisready tells, of a failed PING at start, whether waiting for
// Redis can change it: the server module and the emitter both wait for a
// Redis that is still coming up, and neither should wait out its whole
// timeout for an answer that will not change.
package redisready

import (
	"errors"

	"github.com/redis/go-redis/v9"
)

// Permanent reports a failure no wait will change: Redis answered with an
// error other than one of a server coming up (a password, an ACL), or the
// client is closed.
func Permanent(err error) bool {
	var answered redis.Error
	return errors.As(err, &answered) && !Starting(err) || errors.Is(err, redis.ErrClosed)
}

// Starting reports an answer of a Redis that is coming up: loading its
// data, or a cluster or replica not ready yet. Waiting changes those.
func Starting(err error) bool {
	return redis.IsLoadingError(err) || redis.IsMasterDownError(err) ||
		redis.IsClusterDownError(err) || redis.IsTryAgainError(err)
}

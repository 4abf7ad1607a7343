// Package redisready tells, of a failed PING at start, whether waiting for
// Redis can change it: the server module and the emitter both wait for a
// Redis that is still coming up, and neither should wait out its whole
// timeout for an answer that will not change.
package redisready

import (
	"errors"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Permanent reports a failure no wait will change: Redis answered with an
// error other than one of a server coming up (a password, an ACL), or the
// client is closed.
func Permanent(err error) bool {
	var answered redis.Error
	return errors.As(err, &answered) && !Starting(err) || errors.Is(err, redis.ErrClosed)
}

// Starting reports an answer that waiting changes: a Redis loading its
// data, a cluster or replica not ready yet, a script or function running
// past busy-reply-threshold.
func Starting(err error) bool {
	var answer redis.Error
	return redis.IsLoadingError(err) || redis.IsMasterDownError(err) ||
		redis.IsClusterDownError(err) || redis.IsTryAgainError(err) ||
		errors.As(err, &answer) && strings.HasPrefix(answer.Error(), "BUSY ")
}

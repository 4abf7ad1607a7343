// Package publishonce sends PUBLISH and SPUBLISH to Redis without
// go-redis's retry of a command whose reply was lost.
//
// go-redis sends a command again (up to the client's MaxRetries, 3 by
// default) when its connection fails after it was written: a PUBLISH that
// Redis had executed, whose reply a broken connection lost, was then
// delivered twice, and the call returned nil (found in a chaos trial: 286
// duplicate deliveries of emitter sends after 20 cuts in 4 s). PUBLISH is
// not idempotent. go-redis does not send again a command whose NoRetry
// reports true, once written; the commands here report true, so a publish
// whose fate is unknown returns the error instead (it may have been
// delivered, once). What cannot have reached Redis is still tried again,
// as the client's MaxRetries says: a dial that failed, a connection the
// pool could not give (and go-redis itself replays a command its
// connection was closed under before it was written). The client's options
// are left as they are: they belong to the application.
package publishonce

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
)

// cmd is an IntCmd that go-redis does not send twice.
type cmd struct{ *redis.IntCmd }

// NoRetry tells go-redis not to send the command again once written.
func (cmd) NoRetry() bool { return true }

// New returns a PUBLISH (SPUBLISH if sharded) of payload on channel,
// to give to a client's or a pipeline's Process, and the command whose
// result it sets.
func New(ctx context.Context, sharded bool, channel string, payload any) (redis.Cmder, *redis.IntCmd) {
	name := "publish"
	if sharded {
		name = "spublish"
	}
	c := redis.NewIntCmd(ctx, name, channel, payload)
	return cmd{c}, c
}

// Processor runs a command: a client (one server, Sentinel, a cluster) or
// a pipeline.
type Processor interface {
	Process(ctx context.Context, cmd redis.Cmder) error
}

// Publish publishes payload on channel through c (SPUBLISH if sharded)
// and returns the number of subscribers Redis says received it. A failure
// after the command may have been written is returned as it is, not
// retried; one before (see Unsent) is retried within ctx, as many times
// as the client's MaxRetries.
func Publish(ctx context.Context, c Processor, sharded bool, channel string, payload any) (int64, error) {
	for attempt := 0; ; attempt++ {
		wrapped, result := New(ctx, sharded, channel, payload)
		err := c.Process(ctx, wrapped)
		if err == nil {
			return result.Val(), nil
		}
		if !Again(ctx, c, err, attempt) {
			return 0, err
		}
	}
}

// Again reports, after attempt (0 for the first) failed with err,
// whether to try again: err says nothing was sent (Unsent), ctx has time
// left and the client's MaxRetries allows it. It waits the backoff first.
func Again(ctx context.Context, c any, err error, attempt int) bool {
	if !Unsent(err) || attempt >= MaxRetries(c) || ctx.Err() != nil {
		return false
	}
	d := min(8*time.Millisecond<<attempt, 512*time.Millisecond)
	t := time.NewTimer(d/2 + rand.N(d/2+1))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Unsent reports a failure that proves the command never reached Redis:
// a dial that failed, or no connection from the pool in time.
func Unsent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" || errors.Is(err, redis.ErrPoolTimeout)
}

// MaxRetries is the number of retries c's options allow (3 when it does
// not say: go-redis's default).
func MaxRetries(c any) int {
	switch c := c.(type) {
	case interface{ Options() *redis.Options }:
		return max(c.Options().MaxRetries, 0)
	case interface{ Options() *redis.ClusterOptions }:
		return max(c.Options().MaxRetries, 0)
	}
	return 3
}

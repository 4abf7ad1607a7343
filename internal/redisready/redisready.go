// Package redisready tells, of a failed PING at start, whether waiting for
// Redis can change it: the server module and the emitter both wait for a
// Redis that is still coming up, and neither should wait out its whole
// timeout for an answer that will not change.
package redisready

import (
	"context"
	"errors"
	"fmt"
	"net"
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

// DialError dials Redis once, as client would, and returns why that fails
// (nil if it connects). A PING cut short by its deadline says only that
// time ran out: go-redis retries a refused or unresolvable dial until then
// and reports the context's error, not the dial's. A start that gives up
// asks this to say which it was (nothing listening, a name that does not
// resolve, a TLS mismatch). A cluster client is dialed at each of its seed
// addresses until one connects.
func DialError(ctx context.Context, client redis.UniversalClient) error {
	type target struct {
		network, addr string
		dial          func(context.Context, string, string) (net.Conn, error)
	}
	var targets []target
	switch c := client.(type) {
	case *redis.Client:
		o := c.Options()
		targets = append(targets, target{o.Network, o.Addr, o.Dialer})
	case *redis.ClusterClient:
		o := c.Options()
		for _, a := range o.Addrs {
			targets = append(targets, target{"tcp", a, o.Dialer})
		}
	default:
		return nil
	}
	var errs []error
	for _, t := range targets {
		dial := t.dial
		if dial == nil {
			var d net.Dialer
			dial = d.DialContext
		}
		if t.network == "" {
			t.network = "tcp"
		}
		conn, err := dial(ctx, t.network, t.addr)
		if err == nil {
			_ = conn.Close()
			return nil
		}
		if !strings.Contains(err.Error(), t.addr) {
			err = fmt.Errorf("dial %s: %w", t.addr, err)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

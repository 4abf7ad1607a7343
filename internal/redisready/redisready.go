// Package redisready tells, of a failed PING at start, whether waiting for
// Redis can change it: the server module and the emitter both wait for a
// Redis that is still coming up, and neither should wait out its whole
// timeout for an answer that will not change.
package redisready

import (
	"context"
	"crypto/tls"
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

// DialError dials Redis once, as client would, and returns why that fails:
// nil if it connects, or if no dial ends within ctx (a silence says no
// more than the deadline the caller has already). A PING cut short by its
// deadline says only that time ran out: go-redis retries a refused or
// unresolvable dial until then and reports the context's error, not the
// dial's. A start that gives up asks this to say which it was (nothing
// listening, a name that does not resolve, a TLS mismatch). A cluster
// client's seed addresses are dialed at once; one that connects is enough.
// Dials that some dialer (TLS's handshake, a user's) carries on past ctx
// are left to end on their own and their connections closed.
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
		dial := o.Dialer
		if dial == nil && o.TLSConfig != nil {
			// go-redis gives each node a TLS dialer of its own later; dial
			// as it will.
			d := &tls.Dialer{Config: o.TLSConfig}
			dial = d.DialContext
		}
		for _, a := range o.Addrs {
			targets = append(targets, target{"tcp", a, dial})
		}
	default:
		return nil
	}
	results := make(chan error, len(targets)) // never blocks a late dial
	for _, t := range targets {
		dial := t.dial
		if dial == nil {
			var d net.Dialer
			dial = d.DialContext
		}
		if t.network == "" {
			t.network = "tcp"
		}
		go func() {
			conn, err := dial(ctx, t.network, t.addr)
			if err == nil {
				_ = conn.Close()
				results <- nil
				return
			}
			// go-redis's placeholder for a Sentinel client's master is no
			// address to name; an error that names it already needs none.
			if t.addr != "FailoverClient" && !strings.Contains(err.Error(), t.addr) {
				err = fmt.Errorf("dial %s: %w", t.addr, err)
			}
			results <- err
		}()
	}
	var errs []error
	for range targets {
		select {
		case err := <-results:
			switch {
			case err == nil:
				return nil
			case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
			default:
				errs = append(errs, err)
			}
		case <-ctx.Done():
			return joined(errs)
		}
	}
	return joined(errs)
}

// joinedError is several dial errors on one line, for an error that is
// itself one line of a start's error (errors.Join puts each on its own).
type joinedError []error

func (e joinedError) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (e joinedError) Unwrap() []error { return e }

func joined(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return joinedError(errs)
}

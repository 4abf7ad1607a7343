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
	"io"
	"net"
	"strings"
	"syscall"
	"time"

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
	targets := targetsOf(client)
	if targets == nil {
		return nil
	}
	results := make(chan error, len(targets)) // never blocks a late dial
	for _, t := range targets {
		go func() {
			conn, err := t.dial(ctx, t.network, t.addr)
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

// target is an address client dials, and how.
type target struct {
	network, addr string
	dial          func(context.Context, string, string) (net.Conn, error)
}

// targetsOf returns the addresses client dials first: a client's one, a
// cluster client's seeds; none for other clients.
func targetsOf(client redis.UniversalClient) []target {
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
	for i, t := range targets {
		if t.dial == nil {
			var d net.Dialer
			targets[i].dial = d.DialContext
		}
		if t.network == "" {
			targets[i].network = "tcp"
		}
	}
	return targets
}

// Greeting dials client's first address and returns what the server says
// before being asked anything, as an error: a Redis that refuses every
// connection says why at once and closes it ("-DENIED Redis is running in
// protected mode…", "-ERR max number of clients reached"), which go-redis
// reports only as the broken pipe or EOF its first command met. A DENIED
// is Permanent; the rest, a wait may change. Nil when the server says
// nothing within ctx, or cannot be dialed.
func Greeting(ctx context.Context, client redis.UniversalClient) error {
	targets := targetsOf(client)
	if len(targets) == 0 {
		return nil
	}
	t := targets[0]
	conn, err := t.dial(ctx, t.network, t.addr)
	if err != nil {
		return nil
	}
	defer conn.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(d)
	}
	buf := make([]byte, 512)
	n, _ := conn.Read(buf)
	line, _, _ := strings.Cut(string(buf[:n]), "\r\n")
	msg, ok := strings.CutPrefix(line, "-")
	if !ok || msg == "" {
		return nil
	}
	if strings.HasPrefix(msg, "DENIED") {
		return refusal(msg)
	}
	return fmt.Errorf("redis at %s refuses connections: %s", t.addr, msg)
}

// refusal is a greeting no wait will change; as an answer of Redis's (a
// redis.Error), Permanent reports it.
type refusal string

func (r refusal) Error() string { return string(r) }

// RedisError marks it a redis.Error.
func (refusal) RedisError() {}

// Broken reports a failure that a connection cut by the server looks like
// to go-redis (EOF, a reset, a broken pipe): worth asking Greeting why.
func Broken(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
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

// Ping is client's PING, with what the server said unasked in place of
// the broken connection go-redis reports when it refuses every connection
// (see Greeting): a start then says "DENIED … protected mode" and fails
// at once, or says "max number of clients reached" while it waits.
func Ping(ctx context.Context, client redis.UniversalClient) error {
	err := client.Ping(ctx).Err()
	if Broken(err) {
		gctx, cancel := context.WithTimeout(ctx, greetingWait)
		defer cancel()
		if g := Greeting(gctx, client); g != nil {
			return g
		}
	}
	return err
}

// greetingWait is how long Greeting listens: a refusal comes with the
// connection.
const greetingWait = 300 * time.Millisecond

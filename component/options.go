package component

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/fxws/websocket/broker/redisbroker"
	"github.com/fxws/websocket/helper"
)

// Defaults of the module's own settings (the helper's are in helper.Options).
const (
	// DefaultAddr is where the module's own listener binds when the app
	// provides neither an HTTP mux nor a listener: every interface, port
	// 3000 (the Ignis application's default port).
	DefaultAddr = ":3000"
	// DefaultReadHeaderTimeout bounds the reading of an upgrade request's
	// headers on the module's own server, so slow-header clients
	// (slowloris) cannot hold sockets open.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultRedisPingTimeout bounds the Redis ping made on start.
	DefaultRedisPingTimeout = 5 * time.Second
)

// Options configures the module: every setting of the server helper
// (embedded: path, identifier, default rooms, auth timeout, heartbeat
// interval and timeout, requireEncryption, max payload, idle timeout,
// backpressure limit and close-on-backpressure, pings, encrypted batch
// limit…) plus how the module serves. The zero value of every field means
// its documented default.
type Options struct {
	// Options are the server helper's settings (go doc helper.Options),
	// embedded so that their fields read and set as the module's own.
	helper.Options

	// Addr is the address of the module's own listener, used when the app
	// provides neither an HTTP mux nor a listener. Default ":3000".
	Addr string
	// ReadHeaderTimeout bounds the reading of request headers on the
	// module's own server. Default 10 s.
	ReadHeaderTimeout time.Duration
	// RedisPingTimeout bounds the wait on start, when a Redis connection
	// is given, for Redis to answer PING: one that cannot be reached yet
	// is pinged again until then; one that answers with an error fails the
	// start at once. The start context may end it sooner. Default 5 s.
	RedisPingTimeout time.Duration
	// RedisBroker tunes the Redis broker used when a Redis connection is
	// bound: subscription mode (audience by default; pattern as the
	// original; sharded for Redis Cluster fleets of our servers only),
	// timeouts, workers. Its Logger defaults to the module's.
	RedisBroker redisbroker.Options
}

// Validate reports every option that cannot work.
func (o Options) Validate() error {
	var errs []error
	if err := o.Options.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := o.RedisBroker.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("RedisBroker: %w", err))
	}
	if o.ReadHeaderTimeout < 0 {
		errs = append(errs, fmt.Errorf("ReadHeaderTimeout must not be negative, got %v", o.ReadHeaderTimeout))
	}
	if o.RedisPingTimeout < 0 {
		errs = append(errs, fmt.Errorf("RedisPingTimeout must not be negative, got %v", o.RedisPingTimeout))
	}
	if o.Addr != "" {
		if _, _, err := net.SplitHostPort(o.Addr); err != nil {
			//lint:ignore ST1005 Addr is the field's name, as the other options' errors start with theirs
			errs = append(errs, fmt.Errorf("Addr %q is not host:port: %w", o.Addr, err))
		}
	}
	return errors.Join(errs...)
}

// withDefaults fills the module's own zero values; the helper fills its own.
func (o Options) withDefaults() Options {
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	if o.ReadHeaderTimeout == 0 {
		o.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if o.RedisPingTimeout == 0 {
		o.RedisPingTimeout = DefaultRedisPingTimeout
	}
	return o
}

// Package broker carries envelopes between server instances. A Broker is a
// publish/subscribe transport on named channels; the helper decides what to
// subscribe to (the channels its local clients are an audience of) and how
// to read what arrives. This package holds the interface and an in-process
// implementation; the Redis one lives in broker/redisbroker.
package broker

import (
	"context"
	"errors"
	"time"
)

// Handler receives every message published on a channel the broker is
// subscribed to. The broker calls it from its read loop, so it must not block;
// messages of one channel arrive in publish order.
type Handler func(channel string, payload []byte)

// Broker is a cross-instance publish/subscribe transport.
//
// Subscribe and Unsubscribe take effect before they return (or fail), so a
// caller that has subscribed can tell its peers it is listening. A broker
// whose connection drops re-subscribes by itself to exactly the channels it
// holds at that time.
//
// A call that fails may or may not have changed the set held (the Redis
// broker keeps a change it could not send and applies it when it
// reconnects; one that failed on the caller's context changes nothing).
// Callers therefore repeat a failed change, or send the opposite one,
// whatever they believe the broker holds, and a broker accepts a channel it
// already holds, or one it does not hold, without complaint.
type Broker interface {
	// Start connects and begins calling h for every message on subscribed
	// channels. It returns once the broker can publish and subscribe.
	Start(ctx context.Context, h Handler) error
	// Publish sends payload to everyone subscribed to channel, this
	// instance included.
	Publish(ctx context.Context, channel string, payload []byte) error
	// Subscribe adds channels to the set this instance receives.
	Subscribe(ctx context.Context, channels ...string) error
	// Unsubscribe removes channels from that set.
	Unsubscribe(ctx context.Context, channels ...string) error
	// Close stops delivery and releases connections. It is idempotent.
	Close() error
}

// ErrChangeKept is wrapped by the error of a Subscribe or Unsubscribe that
// could not reach the transport now but whose change the broker has kept
// and will apply once it is connected again (the Redis broker's
// ErrUnavailable): the caller need not retry it.
var ErrChangeKept = errors.New("broker: change kept for the next connection")

// ErrClosed is returned by a broker used after Close.
var ErrClosed = errors.New("broker: closed")

// ErrNotStarted is returned by a broker used before Start.
var ErrNotStarted = errors.New("broker: not started")

// Firehose is implemented by brokers that hand every instance every channel
// whatever it subscribed to (Redis in pattern mode; an in-process broker with
// no peers). When ReceivesAll is true the helper subscribes only to the
// broadcast channel and keeps no per-room, per-user or per-client
// subscriptions, which saves memory and broker round trips per connection.
type Firehose interface {
	// ReceivesAll reports whether every channel reaches this instance
	// whatever it subscribed to.
	ReceivesAll() bool
}

// RestoreNotifier is implemented by brokers whose subscription can be lost
// and made again (the Redis broker): what was published meanwhile never
// reached this instance, and the helper tells the application so (see
// helper.BrokerRestoredFunc).
type RestoreNotifier interface {
	// NotifyRestored makes the broker call f each time it has subscribed
	// again, after a loss, to the channels it holds; down is how long it
	// was without them. f is called from the broker's own goroutine and
	// must not block. A later call replaces f.
	NotifyRestored(f func(down time.Duration))
}

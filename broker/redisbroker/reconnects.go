package redisbroker

import "time"

// Reconnects is Stats().Reconnects alone, for the helper's
// Stats.BrokerReconnects: a counter an app polls to learn that the
// subscription was lost and made again (a Redis restart), which a level
// such as Connected, false for a fraction of a second, does not show
// between two polls.
func (b *Broker) Reconnects() uint64 { return b.stats.reconnects.Load() }

// NotifyRestored implements broker.RestoreNotifier: f is called from the
// broker's reconnect loop each time a lost subscription is made again (the
// events Stats().Reconnects counts: a whole session after a Redis restart
// or a cut connection, or in sharded mode on a cluster the channels of a
// master that failed), with how long they were lost. f must not block.
func (b *Broker) NotifyRestored(f func(down time.Duration)) { b.onRestored.Store(&f) }

// restored counts a subscription made again and tells NotifyRestored's f.
func (b *Broker) restored(down time.Duration) {
	b.stats.reconnects.Add(1)
	if f := b.onRestored.Load(); f != nil {
		(*f)(down)
	}
}

package redisbroker

// Reconnects is Stats().Reconnects alone, for the helper's
// Stats.BrokerReconnects: a counter an app polls to learn that the
// subscription was lost and made again (a Redis restart), which a level
// such as Connected, false for a fraction of a second, does not show
// between two polls.
func (b *Broker) Reconnects() uint64 { return b.stats.reconnects.Load() }

package redisbroker

// SetRenewMin sets the peak of channels from which b renews its session
// once they fall to a quarter of it (minRenew otherwise), so that tests
// need not hold thousands. Call it before Start.
func SetRenewMin(b *Broker, n int) { b.renewMin = n }

// SetBeforeMarker makes every renewal of b call f just before it
// publishes its marker. Call it before Start.
func SetBeforeMarker(b *Broker, f func()) { b.beforeMarker = f }

package component

import (
	"net"
	"syscall"
	"time"
)

// ListenConfig is how the module's own listener is made, exported for
// apps that listen themselves (with WithListener, or a server of their
// own around the helper) and want the same behaviour.
//
// On Linux the listening socket defers accepting a connection until the
// client's first bytes have arrived, for up to wait (TCP_DEFER_ACCEPT,
// rounded up to whole seconds). Every client of an HTTP server speaks
// first, so nothing legitimate waits; what changes is the cost of a
// connection that has said nothing yet: the kernel's pending-connection
// entry instead of a descriptor, a goroutine, a 4 KiB read buffer and a
// stack in the process. Under a burst of connects (a fleet reconnecting
// after a deploy, or a flood) the request is already there when net/http
// starts the connection's goroutine, which then finishes the upgrade
// without blocking. A client still silent after wait is accepted anyway,
// and the server's ReadHeaderTimeout takes over. wait ≤ 0 turns deferral
// off; so does any other operating system.
func ListenConfig(wait time.Duration) net.ListenConfig {
	if wait <= 0 || !deferAcceptSupported {
		return net.ListenConfig{}
	}
	secs := int((wait + time.Second - 1) / time.Second)
	return net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		return setDeferAccept(c, secs)
	}}
}

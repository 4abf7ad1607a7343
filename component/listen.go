package component

import (
	"net"
	"strings"
	"syscall"
	"time"
)

// ListenConfig is how the module's own listener is made, exported for
// apps that listen themselves (with WithListener, or a server of their
// own around the helper) and want the same behaviour. Setting its Control
// replaces what it does.
//
// On Linux a TCP listening socket defers accepting a connection until the
// client's first bytes have arrived (TCP_DEFER_ACCEPT). Every client of an
// HTTP server speaks first, so nothing legitimate waits; what changes is the
// cost of a connection that has said nothing yet: the kernel's
// pending-connection entry instead of a descriptor, a goroutine, a 4 KiB
// read buffer and a stack in the process. Under a burst of connects (a
// fleet reconnecting after a deploy, or a flood) the request is already
// there when net/http starts the connection's goroutine, which then
// finishes the upgrade without blocking.
//
// The kernel counts the wait in SYN-ACK retransmissions, so it is the
// longest of 1, 3, 7, 15, 31… seconds not above wait (at least 1 s; 7 s for
// the default ReadHeaderTimeout of 10 s). A client still silent then is
// accepted anyway, and the server's ReadHeaderTimeout takes over. Pending
// connections count against the listen backlog (net.core.somaxconn):
// silent connects faster than the backlog per wait overflow it, and the
// kernel then answers with SYN cookies (its default), which skip the
// deferral. wait ≤ 0 turns deferral off; so does any other network or
// operating system.
func ListenConfig(wait time.Duration) net.ListenConfig {
	if wait <= 0 || !deferAcceptSupported {
		return net.ListenConfig{}
	}
	secs := deferAcceptSeconds(wait)
	return net.ListenConfig{Control: func(network, _ string, c syscall.RawConn) error {
		if !strings.HasPrefix(network, "tcp") {
			return nil
		}
		return setDeferAccept(c, secs)
	}}
}

// deferAcceptSeconds is the longest wait of the form 2ⁿ−1 seconds not above
// wait, at least 1 s: what the kernel keeps exactly (one SYN-ACK
// retransmission per doubling of its 1 s initial timeout).
func deferAcceptSeconds(wait time.Duration) int {
	secs := 1
	for secs*2+1 <= int(min(wait/time.Second, 1<<20)) {
		secs = secs*2 + 1
	}
	return secs
}

package helper_test

import (
	"context"
	"net"
	"syscall"
	"testing"
)

// deferredListener listens on loopback with TCP_DEFER_ACCEPT, as
// component.ListenConfig does: accepted connections have sent something,
// so UpgradeListener finds their upgrade requests there.
func deferredListener(t *testing.T) net.Listener {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_DEFER_ACCEPT, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	return ln
}

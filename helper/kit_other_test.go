//go:build !linux

package helper_test

import (
	"net"
	"testing"
)

// deferredListener is a plain loopback listener where TCP_DEFER_ACCEPT
// does not exist (UpgradeListener changes nothing there).
func deferredListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	return ln
}

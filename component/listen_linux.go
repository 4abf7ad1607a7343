package component

import (
	"fmt"
	"syscall"
)

const deferAcceptSupported = true

func setDeferAccept(c syscall.RawConn, secs int) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_DEFER_ACCEPT, secs)
	}); err != nil {
		return fmt.Errorf("websocket: listener: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("websocket: listener: set TCP_DEFER_ACCEPT: %w", serr)
	}
	return nil
}

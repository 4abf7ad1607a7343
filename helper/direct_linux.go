//go:build linux && !386

package helper

import (
	"net"
	"syscall"
	"unsafe"
)

const directUpgrades = true

// peek copies what the client has sent so far into l.buf without taking
// it from the socket, and without waiting: 0 when nothing has arrived.
func (l *upgradeListener) peek(tc *net.TCPConn) int {
	rc, err := tc.SyscallConn()
	if err != nil {
		return 0
	}
	l.peekN = 0
	if err := rc.Read(l.peekFn); err != nil {
		return 0
	}
	return l.peekN
}

func (l *upgradeListener) peekSocket(fd uintptr) bool {
	for {
		n, _, e := syscall.Syscall6(syscall.SYS_RECVFROM, fd,
			uintptr(unsafe.Pointer(&l.buf[0])), uintptr(len(l.buf)),
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		if e == syscall.EINTR {
			continue
		}
		if e == 0 {
			l.peekN = int(n)
		}
		return true // done either way: never wait for more
	}
}

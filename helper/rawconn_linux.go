//go:build linux

package helper

import (
	"net"
	"syscall"
	"unsafe"
)

// rawConn gives the connection loop two things net.Conn lacks: waiting for
// readability without a read buffer (so an idle connection holds none), and
// a write that never blocks (so a fan-out writes straight to every socket
// that has room and queues only for those that do not).
type rawConn struct {
	rc   syscall.RawConn
	peek [1]byte
}

func newRawConn(c net.Conn) *rawConn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return &rawConn{rc: rc}
}

// waitReadable blocks until the socket has data (or EOF, or an error) to
// read, without consuming it.
func (r *rawConn) waitReadable() error {
	var opErr error
	err := r.rc.Read(func(fd uintptr) bool {
		for {
			_, _, e := syscall.Syscall6(syscall.SYS_RECVFROM, fd,
				uintptr(unsafe.Pointer(&r.peek[0])), 1,
				syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
			switch e {
			case 0:
				return true
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false
			default:
				opErr = e
				return true
			}
		}
	})
	if err != nil {
		return err
	}
	return opErr
}

// tryWrite writes as much of b as the socket takes now. It returns the bytes
// written; errWouldBlock is not an error, the caller queues the rest.
func (r *rawConn) tryWrite(b []byte) (int, error) {
	var n int
	var opErr error
	err := r.rc.Write(func(fd uintptr) bool {
		for n < len(b) {
			m, e := syscall.Write(int(fd), b[n:])
			if e == syscall.EINTR {
				continue
			}
			if e == syscall.EAGAIN {
				return true
			}
			if e != nil {
				opErr = e
				return true
			}
			n += m
		}
		return true
	})
	if err != nil {
		return n, err
	}
	return n, opErr
}

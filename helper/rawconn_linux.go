//go:build linux && !386

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
//
// The callbacks handed to syscall.RawConn are bound once per connection and
// keep their state in the struct: a closure per call would cost three heap
// allocations per delivered message. The read state belongs to the read
// loop; the write state to whoever holds the client's outbound lock.
type rawConn struct {
	rc   syscall.RawConn
	peek [1]byte

	readFn  func(fd uintptr) bool
	readErr error

	writeFn  func(fd uintptr)
	wbuf     []byte
	wv       [][]byte // vector mode: the frames to write
	iov      *[]iovec // vector mode: the caller's scratch
	wn       int
	writeErr error
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
	r := &rawConn{rc: rc}
	r.readFn = r.peekReadable
	r.writeFn = r.writeSome
	return r
}

// waitReadable blocks until the socket has data (or EOF, or an error) to
// read, without consuming it.
func (r *rawConn) waitReadable() error {
	r.readErr = nil
	if err := r.rc.Read(r.readFn); err != nil {
		return err
	}
	return r.readErr
}

func (r *rawConn) peekReadable(fd uintptr) bool {
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
			r.readErr = e
			return true
		}
	}
}

// tryWrite writes as much of b as the socket takes now. It returns the bytes
// written; a full socket is not an error, the caller queues the rest.
func (r *rawConn) tryWrite(b []byte) (int, error) {
	r.wbuf, r.wn, r.writeErr = b, 0, nil
	err := r.rc.Control(r.writeFn)
	n, opErr := r.wn, r.writeErr
	r.wbuf = nil
	if err != nil {
		return n, err
	}
	return n, opErr
}

// tryWritev writes as much of bufs as the socket takes now, in one sendmsg
// (at most maxIovecs frames), using iov as scratch. It returns the bytes
// written; a full socket is not an error.
func (r *rawConn) tryWritev(bufs [][]byte, iov *[]iovec) (int, error) {
	r.wv, r.iov, r.wn, r.writeErr = bufs, iov, 0, nil
	err := r.rc.Control(r.writeFn)
	n, opErr := r.wn, r.writeErr
	r.wv, r.iov = nil, nil
	if err != nil {
		return n, err
	}
	return n, opErr
}

type iovec = syscall.Iovec

// maxIovecs is Linux's IOV_MAX.
const maxIovecs = 1024

func (r *rawConn) writeVec(fd uintptr) {
	iov := (*r.iov)[:0]
	for _, b := range r.wv {
		if len(b) == 0 {
			continue
		}
		v := syscall.Iovec{Base: &b[0]}
		v.SetLen(len(b))
		iov = append(iov, v)
		if len(iov) == maxIovecs {
			break
		}
	}
	*r.iov = iov
	if len(iov) == 0 {
		return
	}
	for {
		var n uintptr
		var errno syscall.Errno
		if len(iov) == 1 {
			// One frame, the usual case of a fan-out: send(2) skips
			// copying and checking the vector.
			n, errno = send(fd, unsafe.Pointer(iov[0].Base), uintptr(iov[0].Len))
		} else {
			n, errno = sendVec(fd, iov)
		}
		switch errno {
		case 0:
			r.wn = int(n)
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
		default:
			r.writeErr = errno
		}
		clear(iov) // drop the references to the frames
		return
	}
}

// writeSome runs under RawConn.Control, not RawConn.Write: the write never
// waits, so Write's extra work (the descriptor's write lock, resetting its
// poll state, checking the deadline) buys nothing, and it is a twentieth of
// a delivery's CPU. Control's reference on the descriptor is what matters: it
// cannot be closed, and its number reused, during the call. The client's
// outbound lock already keeps writers apart.
func (r *rawConn) writeSome(fd uintptr) {
	if r.wv != nil {
		r.writeVec(fd)
		return
	}
	for r.wn < len(r.wbuf) {
		// RawSyscall: the socket is non-blocking, so the call cannot
		// park the thread, and skipping the scheduler's syscall
		// bookkeeping keeps a fan-out of thousands of writes on its P
		// (with Syscall, a slow write lets the P be handed to another
		// goroutine, which interleaves concurrent fan-outs and stretches
		// both).
		b := r.wbuf[r.wn:]
		n, errno := send(fd, unsafe.Pointer(&b[0]), uintptr(len(b)))
		m := int(n)
		var e error
		if errno != 0 {
			e = errno
			m = 0
		}
		if e == syscall.EINTR {
			continue
		}
		if e == syscall.EAGAIN {
			return
		}
		if e != nil {
			r.writeErr = e
			return
		}
		r.wn += m
	}
}

// sendVec writes a vector with sendmsg(2) rather than writev(2), for the
// reason send is used for one buffer.
func sendVec(fd uintptr, iov []iovec) (uintptr, syscall.Errno) {
	msg := syscall.Msghdr{Iov: &iov[0]}
	// Iovlen is a size_t: uint64 or uint32 with the platform, as uintptr.
	*(*uintptr)(unsafe.Pointer(&msg.Iovlen)) = uintptr(len(iov))
	r, _, errno := syscall.RawSyscall(syscall.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&msg)), sendFlags)
	return r, errno
}

// sendFlags: the socket is non-blocking already (MSG_DONTWAIT says it per
// call); with MSG_NOSIGNAL a peer that has gone yields EPIPE without a
// SIGPIPE for the runtime to field.
const sendFlags = syscall.MSG_DONTWAIT | syscall.MSG_NOSIGNAL

// send writes with send(2) rather than write(2): a socket needs none of the
// file layer that write(2) goes through (vfs_write, fdget_pos), which cost
// about 0.3 µs per call in profiles, some 4 % of a delivered message.
func send(fd uintptr, p unsafe.Pointer, n uintptr) (uintptr, syscall.Errno) {
	r, _, errno := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(p), n, sendFlags, 0, 0)
	return r, errno
}

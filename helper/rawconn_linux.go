//go:build linux && !386

package helper

import (
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawConn gives the connection loop two things net.Conn lacks: waiting for
// readability without a read buffer (so an idle connection holds none), and
// a write that never blocks (so a fan-out writes straight to every socket
// that has room and queues only for those that do not).
//
// The read callback handed to syscall.RawConn is bound once per connection
// and keeps its state in the struct: a closure per call would allocate.
type rawConn struct {
	rc   syscall.RawConn
	peek [1]byte

	readFn  func(fd uintptr) bool
	readErr error
}

// newRawConn returns the raw read side of c and its descriptor, for the
// fast path's sends (see outbound.sock); nil and -1 when c is not a plain
// socket.
func newRawConn(c net.Conn) (*rawConn, int32) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, -1
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, -1
	}
	fd := int32(-1)
	if err := rc.Control(func(d uintptr) { fd = int32(d) }); err != nil || fd < 0 {
		return nil, -1
	}
	r := &rawConn{rc: rc}
	r.readFn = r.peekReadable
	return r, fd
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

// sendNow writes as much of b to the socket fd as it takes now. It returns
// the bytes written; a full socket is not an error, the caller queues the
// rest. The caller holds the client's outbound lock, with the socket not
// shut (see outbound.sock and outbound.shut).
func sendNow(fd int32, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		// RawSyscall: the socket is non-blocking, so the call cannot
		// park the thread, and skipping the scheduler's syscall
		// bookkeeping keeps a fan-out of thousands of writes on its P
		// (with Syscall, a slow write lets the P be handed to another
		// goroutine, which interleaves concurrent fan-outs and stretches
		// both).
		m, errno := send(uintptr(fd), unsafe.Pointer(&b[n]), uintptr(len(b)-n))
		switch errno {
		case 0:
			n += int(m)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return n, nil
		default:
			return n, errno
		}
	}
	return n, nil
}

type iovec = syscall.Iovec

// maxIovecs is Linux's IOV_MAX.
const maxIovecs = 1024

// sendQueueNow writes as much of bufs to the socket fd as it takes now, in
// one system call (at most maxIovecs frames), using iov as scratch. It
// returns the bytes written; a full socket is not an error. The caller
// holds the client's outbound lock, with the socket not shut.
func sendQueueNow(fd int32, bufs [][]byte, iov *[]iovec) (int, error) {
	v := (*iov)[:0]
	for _, b := range bufs {
		if len(b) == 0 {
			continue
		}
		e := syscall.Iovec{Base: &b[0]}
		e.SetLen(len(b))
		v = append(v, e)
		if len(v) == maxIovecs {
			break
		}
	}
	*iov = v
	if len(v) == 0 {
		return 0, nil
	}
	defer clear(v) // drop the references to the frames
	for {
		var n uintptr
		var errno syscall.Errno
		if len(v) == 1 {
			// One frame, the usual case of a fan-out: send(2) skips
			// copying and checking the vector.
			n, errno = send(uintptr(fd), unsafe.Pointer(v[0].Base), uintptr(v[0].Len))
		} else {
			n, errno = sendVec(uintptr(fd), v)
		}
		switch errno {
		case 0:
			return int(n), nil
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return 0, nil
		default:
			return 0, errno
		}
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

// peer reports what the kernel knows of the other end without reading the
// socket: the bytes received from it so far, and whether it has closed its
// side (a FIN or a reset). ok is false when the socket cannot be asked.
func (r *rawConn) peer() (received uint64, closed, ok bool) {
	if r == nil {
		return 0, false, false
	}
	var info *unix.TCPInfo
	var err error
	if cerr := r.rc.Control(func(fd uintptr) { info, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) }); cerr != nil || err != nil {
		return 0, false, false
	}
	switch info.State {
	case unix.BPF_TCP_CLOSE_WAIT, unix.BPF_TCP_CLOSE, unix.BPF_TCP_LAST_ACK, unix.BPF_TCP_TIME_WAIT:
		closed = true
	}
	return info.Bytes_received, closed, true
}

// peekInput copies into p what the kernel holds unread from the peer,
// without taking it. ok is false when the socket cannot be asked.
func (r *rawConn) peekInput(p []byte) (n int, ok bool) {
	if r == nil || len(p) == 0 {
		return 0, false
	}
	var errno syscall.Errno
	cerr := r.rc.Control(func(fd uintptr) {
		for {
			r1, _, e := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
				syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
			if e == syscall.EINTR {
				continue
			}
			n, errno = int(r1), e
			return
		}
	})
	switch {
	case cerr != nil:
		return 0, false
	case errno == 0:
		return n, true
	case errno == syscall.EAGAIN || errno == syscall.ECONNRESET || errno == syscall.EPIPE:
		return 0, true // nothing unread (a reset reports itself only once the data is read)
	}
	return 0, false
}

// unread returns how many bytes the kernel holds unread from the peer.
// ok is false when the socket cannot be asked.
func (r *rawConn) unread() (n int, ok bool) {
	if r == nil {
		return 0, false
	}
	var err error
	if cerr := r.rc.Control(func(fd uintptr) { n, err = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }); cerr != nil || err != nil {
		return 0, false
	}
	return n, true
}

// unsent returns how many bytes the socket's send queue holds that the
// peer has not acknowledged. ok is false when the socket cannot be asked.
func (r *rawConn) unsent() (n int, ok bool) {
	if r == nil {
		return 0, false
	}
	var err error
	if cerr := r.rc.Control(func(fd uintptr) { n, err = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) }); cerr != nil || err != nil {
		return 0, false
	}
	return n, true
}

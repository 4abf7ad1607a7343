//go:build !linux || 386

package helper

import "net"

// rawConn is only available on Linux (but for 386, whose socket calls go
// through socketcall(2)); elsewhere the connection loop reads
// into a pooled buffer held while blocked and writes from a goroutine.
type rawConn struct{}

func newRawConn(net.Conn) (*rawConn, int32) { return nil, -1 }

func (*rawConn) waitReadable() error { return nil }

func sendNow(int32, []byte) (int, error) { return 0, nil }

func sendQueueNow(int32, [][]byte, *[]iovec) (int, error) { return 0, nil }

// iovec stands in for syscall.Iovec, which not every platform has.
type iovec struct{}

func (*rawConn) peer() (received uint64, closed, ok bool) { return 0, false, false }

func (*rawConn) peekInput([]byte) (int, bool) { return 0, false }

func (*rawConn) unread() (int, bool) { return 0, false }

func (*rawConn) unsent() (int, bool) { return 0, false }

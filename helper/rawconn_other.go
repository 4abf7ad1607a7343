//go:build !linux || 386

package helper

import "net"

// rawConn is only available on Linux (but for 386, whose socket calls go
// through socketcall(2)); elsewhere the connection loop reads
// into a pooled buffer held while blocked and writes from a goroutine.
type rawConn struct{}

func newRawConn(net.Conn) *rawConn { return nil }

func (*rawConn) waitReadable() error { return nil }

func (*rawConn) tryWrite([]byte) (int, error) { return 0, nil }

func (*rawConn) tryWritev([][]byte, *[]iovec) (int, error) { return 0, nil }

// iovec stands in for syscall.Iovec, which not every platform has.
type iovec struct{}

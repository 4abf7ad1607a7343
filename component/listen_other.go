//go:build !linux

package component

import "syscall"

const deferAcceptSupported = false

func setDeferAccept(syscall.RawConn, int) error { return nil }

//go:build !linux || 386

package helper

import "net"

// Elsewhere Serve is srv.Serve(ln).
const directUpgrades = false

func (*upgradeListener) peek(*net.TCPConn) int { return 0 }

func (*upgradeListener) peekSocket(uintptr) bool { return true }

//go:build linux && !386

package helper

// hasRawPath: this platform reads and writes sockets directly (rawConn,
// the poller).
const hasRawPath = true

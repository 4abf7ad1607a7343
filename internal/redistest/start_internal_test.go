package redistest

import (
	"net"
	"testing"
	"time"
)

// A redis-server that exits before it answers (its port taken by another
// process between freePort and its bind) makes start return an error, for
// Start to retry on another port. start used to wait a second time for the
// exit that waitReady had already taken, and hung: a CI run stopped for 17
// minutes in a cluster test, then timed out.
func TestStartReturnsWhenTheServerExitsAtOnce(t *testing.T) {
	lookPath(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	s := &Server{tb: t, dir: t.TempDir(), port: taken.Addr().(*net.TCPAddr).Port}
	done := make(chan error, 1)
	go func() { done <- s.start() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("redis-server started on a port another listener holds")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("start did not return after redis-server exited")
	}
}

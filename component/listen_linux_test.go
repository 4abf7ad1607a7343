package component

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

func deferAcceptOf(t *testing.T, ln net.Listener) int {
	t.Helper()
	rc, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		v, serr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_DEFER_ACCEPT)
	}); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	return v
}

func TestListenConfigDefersAccept(t *testing.T) {
	lc := ListenConfig(1500 * time.Millisecond)
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if v := deferAcceptOf(t, ln); v == 0 {
		t.Fatal("TCP_DEFER_ACCEPT is not set on the listener")
	}
	tl := ln.(*net.TCPListener)

	// A client that has sent nothing is not handed to the process.
	silent, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	talker, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer talker.Close()
	_ = tl.SetDeadline(time.Now().Add(300 * time.Millisecond))
	if c, err := tl.Accept(); !errors.Is(err, os.ErrDeadlineExceeded) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("a silent connection was accepted at once (err %v)", err)
	}

	// Its first bytes are: accepted with the request already readable.
	if _, err := talker.Write([]byte("GET / HTTP/1.1\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = tl.SetDeadline(time.Now().Add(5 * time.Second))
	c, err := tl.Accept()
	if err != nil {
		t.Fatalf("accept after the client spoke: %v", err)
	}
	defer c.Close()
	if c.RemoteAddr().String() != talker.LocalAddr().String() {
		t.Fatalf("accepted %v, want the client that spoke (%v)", c.RemoteAddr(), talker.LocalAddr())
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 3)
	if _, err := c.Read(buf); err != nil || string(buf) != "GET" {
		t.Fatalf("read %q, %v", buf, err)
	}

	// Past the wait, a silent client is accepted anyway and left to the
	// server's header timeout.
	_ = tl.SetDeadline(time.Now().Add(15 * time.Second))
	c2, err := tl.Accept()
	if err != nil {
		t.Fatalf("a silent client was never accepted: %v", err)
	}
	defer c2.Close()
	if c2.RemoteAddr().String() != silent.LocalAddr().String() {
		t.Fatalf("accepted %v, want the silent client (%v)", c2.RemoteAddr(), silent.LocalAddr())
	}
}

func TestListenConfigWithoutWait(t *testing.T) {
	for _, d := range []time.Duration{0, -time.Second} {
		lc := ListenConfig(d)
		if lc.Control != nil {
			t.Fatalf("ListenConfig(%v) sets socket options", d)
		}
		ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		v := deferAcceptOf(t, ln)
		ln.Close()
		if v != 0 {
			t.Fatalf("ListenConfig(%v): TCP_DEFER_ACCEPT %d", d, v)
		}
	}
}

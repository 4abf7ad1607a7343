package component

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
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
	lc := ListenConfig(1500 * time.Millisecond) // 1 s: the kernel's unit
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if v := deferAcceptOf(t, ln); v != 1 {
		t.Fatalf("TCP_DEFER_ACCEPT reads %d, want 1 (s)", v)
	}
	tl := ln.(*net.TCPListener)

	// A client that has spoken is accepted, with its bytes readable.
	talker, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer talker.Close()
	if _, err := talker.Write([]byte("GET / HTTP/1.1\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = tl.SetDeadline(time.Now().Add(5 * time.Second))
	c, err := tl.Accept()
	if err != nil {
		t.Fatalf("accept after the client spoke: %v", err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 3)
	if _, err := c.Read(buf); err != nil || string(buf) != "GET" {
		t.Fatalf("read %q, %v", buf, err)
	}

	// One that has sent nothing is not handed to the process at once…
	silent, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	dialed := time.Now()
	_ = tl.SetDeadline(time.Now().Add(300 * time.Millisecond))
	if c, err := tl.Accept(); !errors.Is(err, os.ErrDeadlineExceeded) {
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		if d := time.Since(dialed); d < 900*time.Millisecond {
			t.Fatalf("a silent connection was accepted after %v, before the 1 s wait", d)
		}
		return // this test was held up past the wait: nothing more to see
	}
	// …but once the wait is over, and left to the server's header timeout.
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

func TestDeferAcceptSeconds(t *testing.T) {
	for _, tc := range []struct {
		wait time.Duration
		want int
	}{
		{time.Millisecond, 1}, {time.Second, 1}, {2 * time.Second, 1}, {3 * time.Second, 3},
		{10 * time.Second, 7}, {15 * time.Second, 15}, {time.Minute, 31}, {1<<63 - 1, 1<<20 - 1},
	} {
		if got := deferAcceptSeconds(tc.wait); got != tc.want {
			t.Errorf("deferAcceptSeconds(%v) = %d, want %d", tc.wait, got, tc.want)
		}
	}
	// What the kernel keeps is what was asked.
	for _, wait := range []time.Duration{time.Second, 10 * time.Second, time.Minute} {
		lc := ListenConfig(wait)
		ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		v := deferAcceptOf(t, ln)
		ln.Close()
		if v != deferAcceptSeconds(wait) {
			t.Errorf("ListenConfig(%v): the kernel keeps %d s, want %d", wait, v, deferAcceptSeconds(wait))
		}
	}
}

// A Unix socket takes no TCP option: ListenConfig leaves it alone.
func TestListenConfigUnixSocket(t *testing.T) {
	lc := ListenConfig(10 * time.Second)
	ln, err := lc.Listen(context.Background(), "unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatalf("unix listener: %v", err)
	}
	ln.Close()
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

//go:build linux

package helper

import (
	"context"
	"crypto/tls"
	"net"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// tlsServedClient serves a helper over TLS (httptest's StartTLS, as
// srv.ServeTLS, which direct.go's doc sends TLS users to) and connects one
// authenticated client whose receive buffer is small and which never reads.
func tlsServedClient(t *testing.T, opts Options) (*WebSocketServerHelper, *client) {
	t.Helper()
	opts.HeartbeatInterval, opts.HeartbeatTimeout, opts.IdleTimeout = time.Hour, time.Hour, time.Hour
	h, err := New(Config{
		Options: opts,
		Handlers: Handlers{Authenticate: func(context.Context, AuthenticateRequest) (*AuthResult, error) {
			return &AuthResult{UserID: "u"}, nil
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.StartTLS()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = h.Shutdown(ctx)
		srv.Close()
	})
	d := ws.Dialer{
		TLSConfig: &tls.Config{InsecureSkipVerify: true},
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var nd net.Dialer
			c, err := nd.DialContext(ctx, network, addr)
			if err == nil {
				_ = c.(*net.TCPConn).SetReadBuffer(4096)
			}
			return c, err
		},
	}
	conn, _, _, err := d.Dial(context.Background(), "wss"+strings.TrimPrefix(srv.URL, "https")+h.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if err := wsutil.WriteClientText(conn, []byte(`{"event":"authenticate","data":{}}`)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		h.reg.mu.RLock()
		var c *client
		for _, x := range h.reg.clients {
			c = x
		}
		h.reg.mu.RUnlock()
		if c != nil && c.authenticated() {
			return h, c
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("client not authenticated")
	return nil, nil
}

func sndbuf(t *testing.T, conn net.Conn) int {
	t.Helper()
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	rc, err := conn.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var serr error
	if err := rc.Control(func(fd uintptr) { n, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF) }); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	return n
}

// SendBufferSize applies over TLS (srv.ServeTLS) too: the hijacked conn is
// a *tls.Conn, which has no SetWriteBuffer, and the socket under it kept
// the kernel's autotuned buffer (found in review).
func TestSendBufferSizeAppliesOverTLS(t *testing.T) {
	const size = 6000 // Linux reports twice this; its default starts at 16384
	_, c := tlsServedClient(t, Options{SendBufferSize: size})
	if got := sndbuf(t, c.conn); got != 2*size {
		t.Fatalf("SO_SNDBUF of a TLS client's socket = %d, want %d (SendBufferSize %d doubled)", got, 2*size, size)
	}
}

// ClientView.Backlog counts the kernel's send queue over TLS too (c.raw is
// nil there: a *tls.Conn is not a syscall.Conn); a stalled wss client whose
// bytes all sat in the kernel showed 0 (found in review).
func TestBacklogCountsTheKernelQueueOverTLS(t *testing.T) {
	h, c := tlsServedClient(t, Options{})
	payload := strings.Repeat("x", 1000)
	for range 40 { // 40 KB: well past the client's 4 KiB window, within the server's send buffer
		if _, err := h.SendToClient(c.id, "tick", payload); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	v, _ := h.GetClient(c.id)
	if v.Backlog == 0 {
		c.out.mu.Lock()
		q := c.out.queued
		c.out.mu.Unlock()
		t.Fatalf("Backlog = 0 for a TLS client that read nothing of 40 KB sent (helper queue %d); the kernel's send queue is not counted", q)
	}
}

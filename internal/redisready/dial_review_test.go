package redisready

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// silentListener accepts connections and never writes to them: a TLS
// handshake against it waits forever (a firewall that accepts, a Redis
// stuck loading its data behind a TLS proxy, a wrong port).
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}

// With TLS, the client's dialer is go-redis's NewDialer, whose
// tls.DialWithDialer ignores ctx: the dial runs for the client's
// DialTimeout (5 s by default). DialError must return when ctx ends, or a
// Start that gave up returned seconds after its own deadline (found in
// review).
func TestDialErrorHonoursItsContextWithTLS(t *testing.T) {
	addr := silentListener(t)
	client := redis.NewClient(&redis.Options{Addr: addr, TLSConfig: &tls.Config{InsecureSkipVerify: true}, DialTimeout: 4 * time.Second})
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := DialError(ctx, client)
	if took := time.Since(start); took > time.Second {
		t.Fatalf("DialError took %v with a 300ms context (err %v)", took, err)
	}
}

// A cluster client's ClusterOptions.Dialer is nil unless set (go-redis
// makes each node's TLS dialer later): DialError must dial with its
// TLSConfig, or a TLS mismatch connects at the TCP level and looks fine
// (found in review).
func TestDialErrorClusterTLSMismatch(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // a plain-text Redis: it answers a ClientHello with an error
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				buf := make([]byte, 512)
				_, _ = c.Read(buf)
				_, _ = c.Write([]byte("-ERR unknown command\r\n"))
				c.Close()
			}()
		}
	}()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{ln.Addr().String()}, TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	defer cc.Close()
	single := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	defer single.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	t.Logf("single client: %v", DialError(ctx, single))
	if err := DialError(ctx, cc); err == nil {
		t.Fatal("DialError = nil for a TLS cluster client whose seed speaks plain text; the single-node client reports the TLS failure")
	}
}

// For a Sentinel (failover) client, Options().Addr is go-redis's
// placeholder "FailoverClient": never named as an address. Its dialer asks
// the sentinels, retrying refused ones until ctx ends, so what it says is
// a deadline: nothing to add to the start's own error.
func TestDialErrorSentinel(t *testing.T) {
	gone, _ := net.Listen("tcp", "127.0.0.1:0")
	refused := gone.Addr().String()
	gone.Close()
	fc := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "mymaster", SentinelAddrs: []string{refused}})
	defer fc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := DialError(ctx, fc); err != nil && strings.Contains(err.Error(), "FailoverClient") {
		t.Fatalf("DialError = %v: go-redis's placeholder named as an address", err)
	}
}

package redisready

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestDialError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	// An address with nothing listening: a listener opened and closed.
	gone, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := gone.Addr().String()
	gone.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name   string
		client redis.UniversalClient
		want   []string // substrings of the error; none: nil
	}{
		{"listening", redis.NewClient(&redis.Options{Addr: ln.Addr().String()}), nil},
		{"refused", redis.NewClient(&redis.Options{Addr: refused}), []string{refused, "connection refused"}},
		{"unresolvable", redis.NewClient(&redis.Options{Addr: "no-such-host.invalid:6379"}), []string{"no-such-host.invalid"}},
		{"custom dialer", redis.NewClient(&redis.Options{Addr: "x:1", Dialer: func(context.Context, string, string) (net.Conn, error) {
			return nil, net.UnknownNetworkError("test")
		}}), []string{"dial x:1", "unknown network test"}},
		{"cluster, one seed up", redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{refused, ln.Addr().String()}}), nil},
		{"cluster, all down", redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{refused, "no-such-host.invalid:7000"}}), []string{refused, "connection refused", "no-such-host.invalid"}},
		{"ring: not dialed", redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": refused}}), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer tc.client.Close()
			err := DialError(ctx, tc.client)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("DialError = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("DialError = nil, want an error naming %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("DialError = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

// A Redis that refuses every connection says why at once and closes it;
// go-redis reports a broken pipe or an EOF. Ping says what Redis said: a
// protected-mode DENIED fails a start at once (a chaos trial's emitter
// waited out its 30 s for it), a full house is worth waiting for (found
// in a chaos trial: both showed as "write: broken pipe").
func TestPingSaysWhyRedisRefused(t *testing.T) {
	for _, tc := range []struct {
		greeting  string
		permanent bool
	}{
		{"-DENIED Redis is running in protected mode because protected mode is enabled\r\n", true},
		{"-ERR max number of clients reached\r\n", false},
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				_, _ = c.Write([]byte(tc.greeting))
				c.Close()
			}
		}()
		client := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), MaxRetries: -1})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = Ping(ctx, client)
		cancel()
		_ = client.Close()
		ln.Close()
		want := strings.TrimPrefix(strings.TrimSpace(tc.greeting), "-")
		if err == nil || !strings.Contains(err.Error(), want) || Permanent(err) != tc.permanent {
			t.Errorf("Ping against a Redis greeting %q: %v (permanent %v), want its words, permanent %v", want, err, Permanent(err), tc.permanent)
		}
	}
}

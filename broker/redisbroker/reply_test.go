package redisbroker_test

import (
	"context"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxws/websocket/broker/redisbroker"
	"github.com/fxws/websocket/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// replyCutter is a TCP proxy in front of Redis that, once armed, swallows
// the next integer reply Redis sends (a PUBLISH's: pub/sub messages are
// arrays or pushes) and closes that connection: the command was executed,
// its answer never arrives (a connection reset by a NAT or a load
// balancer between the app and Redis).
type replyCutter struct {
	ln    net.Listener
	armed atomic.Bool
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

func newReplyCutter(t *testing.T, target string) *replyCutter {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &replyCutter{ln: ln}
	pipe := func(dst, src net.Conn, cut bool) {
		defer p.wg.Done()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if cut && buf[0] == ':' && p.armed.CompareAndSwap(true, false) {
					break
				}
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		dst.Close()
		src.Close()
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			a, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", target)
			if err != nil {
				a.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, a, b)
			p.mu.Unlock()
			p.wg.Add(2)
			go pipe(b, a, false)
			go pipe(a, b, true)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// countUntil counts the messages on ch other than "marker" until marker
// arrives, which the caller publishes after what it counts: one channel's
// messages arrive in order.
func countUntil(t *testing.T, ps *redis.PubSub, publish func()) int {
	t.Helper()
	publish()
	n := 0
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		msg, err := ps.ReceiveMessage(ctx)
		if err != nil {
			t.Fatalf("waiting for the marker: %v (%d counted)", err, n)
		}
		if msg.Payload == "marker" {
			return n
		}
		n++
	}
}

// Broker.Publish through a connection cut after Redis executed the PUBLISH
// (its reply lost) returned nil and the message was delivered twice:
// go-redis retries the command by itself (MaxRetries, 3 by default) on a
// fresh connection (found in a chaos trial: 60 duplicate deliveries of
// instance sends in 4 s with 20 cuts, all reported OK). Now it is not sent
// again, whatever the client's MaxRetries: delivered once, and the error
// returned, as its fate is unknown to the broker.
func TestBrokerPublishWhoseReplyIsLostIsNotDeliveredTwice(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	admin := srv.Client()
	sub := srv.Client().Subscribe(ctx, "ws:room:r")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}

	p := newReplyCutter(t, srv.Addr())
	rdb := redis.NewClient(&redis.Options{Addr: p.ln.Addr().String()}) // go-redis defaults: MaxRetries 3
	t.Cleanup(func() { _ = rdb.Close() })
	pub, _ := startBroker(t, rdb, redisbroker.Options{ProbeInterval: time.Minute})
	var err error
	got := countUntil(t, sub, func() {
		p.armed.Store(true)
		err = pub.Publish(ctx, "ws:room:r", []byte(`{"serverId":"x","type":"room","target":"r","event":"m","data":1}`))
		if p.armed.Load() {
			t.Fatal("the cutter never saw the publish's reply")
		}
		admin.Publish(ctx, "ws:room:r", "marker")
	})
	if got != 1 || err == nil {
		t.Fatalf("one Publish whose reply was lost: delivered %d times, returned %v; want once, and an error", got, err)
	}
	t.Logf("publish: %v; delivered once", err)

	// Publishes in flight together share a pipeline, whose replies are
	// lost together: none is sent twice either.
	const many = 50
	errs := make([]error, many)
	seen := make(map[string]int)
	publish := func() {
		p.armed.Store(true)
		var wg sync.WaitGroup
		for i := range many {
			wg.Go(func() {
				errs[i] = pub.Publish(ctx, "ws:room:r", []byte(`{"serverId":"x","type":"room","target":"r","event":"m","data":`+strconv.Itoa(100+i)+`}`))
			})
		}
		wg.Wait()
		p.armed.Store(false)
		admin.Publish(ctx, "ws:room:r", "marker")
	}
	publish()
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	defer rcancel()
	for {
		msg, err := sub.ReceiveMessage(rctx)
		if err != nil {
			t.Fatal(err)
		}
		if msg.Payload == "marker" {
			break
		}
		seen[msg.Payload]++
	}
	failed := 0
	for i := range many {
		n := seen[`{"serverId":"x","type":"room","target":"r","event":"m","data":`+strconv.Itoa(100+i)+`}`]
		if n > 1 || errs[i] == nil && n != 1 {
			t.Fatalf("publish %d (of %d at once, their replies cut): delivered %d times, returned %v", i, many, n, errs[i])
		}
		if errs[i] != nil {
			failed++
		}
	}
	t.Logf("%d publishes at once, replies cut: %d failed, none delivered twice", many, failed)

	// The next goes through as usual.
	got = countUntil(t, sub, func() {
		if err := pub.Publish(ctx, "ws:room:r", []byte(`{"serverId":"x","type":"room","target":"r","event":"m","data":2}`)); err != nil {
			t.Fatal(err)
		}
		admin.Publish(ctx, "ws:room:r", "marker")
	})
	if got != 1 {
		t.Fatalf("the next publish delivered %d times, want 1", got)
	}
}

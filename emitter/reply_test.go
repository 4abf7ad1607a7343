package emitter_test

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxws/websocket/emitter"
	"github.com/fxws/websocket/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// replyCutter is a TCP proxy in front of Redis that, once armed, swallows
// the next integer reply Redis sends (a PUBLISH's) and closes that
// connection:
// the command was executed, its answer never arrives (a connection reset
// by a NAT or a load balancer between the app and Redis).
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
			go func() { // client -> redis
				defer p.wg.Done()
				buf := make([]byte, 32<<10)
				for {
					n, err := a.Read(buf)
					if n > 0 {
						if _, werr := b.Write(buf[:n]); werr != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				a.Close()
				b.Close()
			}()
			go func() { // redis -> client
				defer p.wg.Done()
				buf := make([]byte, 32<<10)
				for {
					n, err := b.Read(buf)
					if n > 0 {
						if buf[0] == ':' && p.armed.CompareAndSwap(true, false) {
							break // the reply is lost, the connection cut
						}
						if _, werr := a.Write(buf[:n]); werr != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				a.Close()
				b.Close()
			}()
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

// A PUBLISH whose reply is lost on the way back (the connection cut after
// Redis executed it) was sent again by go-redis's own retry (MaxRetries, 3
// by default), on a fresh connection: the send returned nil, and every
// receiver got the message twice (found in a chaos trial: 20 such cuts in
// 4 s, 200 + 80 + 6 duplicate deliveries of emitter sends, all reported
// sent once and OK). Now it is not sent again, whatever the client's
// MaxRetries: delivered once, and the send returns the error, as its fate
// is unknown to the emitter. PUBLISH is not idempotent.
func TestPublishWhoseReplyIsLostIsNotDeliveredTwice(t *testing.T) {
	srv := redistest.Start(t)
	p := newReplyCutter(t, srv.Addr())
	ctx := context.Background()
	admin := srv.Client()
	defer admin.Close()

	sub := srv.Client().Subscribe(ctx, "ws:room:r")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: p.ln.Addr().String()}) // go-redis defaults: MaxRetries 3
	defer rdb.Close()
	e, err := emitter.New(rdb, emitter.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	count := func(send func() error) (int, error) {
		t.Helper()
		p.armed.Store(true)
		err := send()
		p.armed.Store(false)
		admin.Publish(ctx, "ws:room:r", "marker") // after it: one channel's messages arrive in order
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		n := 0
		for {
			msg, rerr := sub.ReceiveMessage(rctx)
			if rerr != nil {
				t.Fatalf("waiting for the marker: %v (%d counted)", rerr, n)
			}
			if msg.Payload == "marker" {
				return n, err
			}
			n++
		}
	}
	got, sendErr := count(func() error { return e.ToRoom(ctx, "r", "m", 1) })
	if got != 1 || sendErr == nil {
		t.Fatalf("one send whose reply was lost: delivered %d times, returned %v; want once, and an error", got, sendErr)
	}
	t.Logf("send: %v; delivered once", sendErr)
	if got, err := count(func() error { _, err := e.Publish(ctx, "room", "r", "m", 2); return err }); got != 1 || err == nil {
		t.Fatalf("Publish whose reply was lost: delivered %d times, returned %v; want once, and an error", got, err)
	}
	if st := e.Stats(); st.PublishErrors != 2 || st.Published != 0 {
		t.Fatalf("stats %+v, want 2 publish errors", st)
	}
}

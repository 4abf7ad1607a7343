package emitter_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxws/websocket/emitter"
	"github.com/fxws/websocket/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// stallNextPublish holds the next PUBLISH written to Redis for a while
// before it goes out, on a connection go-redis has already given the
// command: the goroutine that runs it was preempted there and, in a
// process starved of CPU, got the processor back that much later (the
// caller, woken by its timer, runs first).
type stallNextPublish struct {
	stall time.Duration
	armed atomic.Bool
}

type stallingConn struct {
	net.Conn
	h *stallNextPublish
}

func (c stallingConn) Write(b []byte) (int, error) {
	if bytes.Contains(bytes.ToLower(b), []byte("publish")) && c.h.armed.CompareAndSwap(true, false) {
		time.Sleep(c.h.stall)
	}
	return c.Conn.Write(b)
}

func (h *stallNextPublish) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := next(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return stallingConn{c, h}, nil
	}
}
func (h *stallNextPublish) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *stallNextPublish) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// One emitter's sends, made one after another, reach a client in that
// order (README). A send that returned its PublishTimeout error was still
// carried out afterwards by the goroutine the emitter had left running it
// (bounded.Runner), and so reached Redis after the sends made once it had
// returned: a soak saw emitter sends 254 and 503 arrive after 256 and 504,
// at every client of three instances. The broker's publisher drops what
// expired while it waited; the emitter sends it late, out of order.
func TestSendThatTimedOutIsNotDeliveredAfterLaterSends(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	sub := srv.Client()
	ps := sub.Subscribe(ctx, "ws:room:order")
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	rdb := srv.Client()
	hook := &stallNextPublish{stall: 700 * time.Millisecond}
	rdb.AddHook(hook)
	e, err := emitter.New(rdb, emitter.Options{PublishTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer e.Stop(ctx)
	hook.armed.Store(true)
	err = e.ToRoom(ctx, "order", "n", 1)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the stalled send: %v, want its timeout", err)
	}
	// The emitter takes Redis for unreachable after a timeout, and lets a
	// send through every 250 ms to find it back.
	var second error
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if second = e.ToRoom(ctx, "order", "n", 2); second == nil {
			break
		}
	}
	if second != nil {
		t.Fatalf("the send after it: %v", second)
	}
	var got []int
	timeout := time.After(2 * time.Second)
	for len(got) < 2 {
		select {
		case m := <-ps.Channel():
			var env struct{ Data int }
			if json.Unmarshal([]byte(m.Payload), &env) == nil {
				got = append(got, env.Data)
			}
		case <-timeout:
			if len(got) == 1 && got[0] == 2 {
				return // the failed send was not delivered: in order
			}
			t.Fatalf("received %v", got)
		}
	}
	if got[0] != 1 {
		t.Fatalf("received %v: the send that failed came after the one made once it had returned", got)
	}
}

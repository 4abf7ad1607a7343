package helper_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/helper"
)

// restoringBroker is an in-process broker that reports restorations when
// the test says so, as the Redis broker does after a reconnect.
type restoringBroker struct {
	broker.Broker
	mu sync.Mutex
	f  func(time.Duration)
}

func (b *restoringBroker) NotifyRestored(f func(time.Duration)) {
	b.mu.Lock()
	b.f = f
	b.mu.Unlock()
}

func (b *restoringBroker) restore(down time.Duration) {
	b.mu.Lock()
	f := b.f
	b.mu.Unlock()
	if f != nil {
		f(down)
	}
}

func newRestoredHelper(t *testing.T, cb helper.BrokerRestoredFunc) (*helper.WebSocketServerHelper, *restoringBroker) {
	t.Helper()
	b := &restoringBroker{Broker: broker.NewMemory()}
	h, err := helper.New(helper.Config{
		Handlers: helper.Handlers{
			Authenticate: func(context.Context, helper.AuthenticateRequest) (*helper.AuthResult, error) {
				return &helper.AuthResult{UserID: "u"}, nil
			},
			BrokerRestored: cb,
		},
		Broker: b,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return h, b
}

// TestBrokerRestoredCallsComeOneAtATime: restorations reported while the
// handler runs are taken together by its next call, with the longest
// outage; the broker's report never waits for the handler.
func TestBrokerRestoredCallsComeOneAtATime(t *testing.T) {
	entered := make(chan helper.BrokerRestoredInfo)
	release := make(chan struct{})
	h, b := newRestoredHelper(t, func(ctx context.Context, info helper.BrokerRestoredInfo) error {
		entered <- info
		<-release
		return nil
	})
	defer h.Shutdown(context.Background())

	b.restore(time.Second)
	if info := <-entered; info.Restorations != 1 || info.Down != time.Second {
		t.Fatalf("first call %+v", info)
	}
	reported := make(chan struct{})
	go func() {
		for _, d := range []time.Duration{3 * time.Second, 2 * time.Second, time.Millisecond} {
			b.restore(d)
		}
		close(reported)
	}()
	select {
	case <-reported:
	case <-time.After(5 * time.Second):
		t.Fatal("the broker's reports waited for a running handler")
	}
	release <- struct{}{}
	if info := <-entered; info.Restorations != 3 || info.Down != 3*time.Second {
		t.Fatalf("second call %+v, want 3 restorations, Down 3s", info)
	}
	release <- struct{}{}
	select {
	case info := <-entered:
		t.Fatalf("a third call %+v with nothing reported", info)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestBrokerRestoredHandlerFailures: an error or a panic is counted in
// HandlerErrors and the next restoration calls the handler again.
func TestBrokerRestoredHandlerFailures(t *testing.T) {
	calls := make(chan int, 2)
	n := 0
	h, b := newRestoredHelper(t, func(ctx context.Context, info helper.BrokerRestoredInfo) error {
		n++
		calls <- n
		if n == 1 {
			panic("feed gone")
		}
		return context.DeadlineExceeded
	})
	defer h.Shutdown(context.Background())
	for want := 1; want <= 2; want++ {
		b.restore(time.Millisecond)
		select {
		case got := <-calls:
			if got != want {
				t.Fatalf("call %d, want %d", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("call %d did not come", want)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.Stats().HandlerErrors != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("HandlerErrors %d, want 2", h.Stats().HandlerErrors)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestBrokerRestoredHandlerEndsWithShutdown: a running handler's context
// ends when the helper shuts down, and Shutdown waits for it within its
// own context.
func TestBrokerRestoredHandlerEndsWithShutdown(t *testing.T) {
	running := make(chan struct{})
	h, b := newRestoredHelper(t, func(ctx context.Context, info helper.BrokerRestoredInfo) error {
		close(running)
		<-ctx.Done()
		return nil
	})
	b.restore(time.Millisecond)
	<-running
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	// One that ignores its context does not hold Shutdown past its own.
	stuck := make(chan struct{})
	defer close(stuck)
	running = make(chan struct{})
	h, b = newRestoredHelper(t, func(ctx context.Context, info helper.BrokerRestoredInfo) error {
		close(running)
		<-stuck
		return nil
	})
	b.restore(time.Millisecond)
	<-running
	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := h.Shutdown(ctx); err == nil {
		t.Fatal("Shutdown with a handler still running returned nil")
	}
}

// TestBrokerRestoredHandlerNotCalledOnceShutDown: a restoration reported
// while the handler runs, and Shutdown then ending the handler's context,
// leaves the helper's goroutine with both a wake-up and its context done;
// the handler must not be called again, with a context already ended, as
// the server stops (where it could only fail, and be logged as failed).
func TestBrokerRestoredHandlerNotCalledOnceShutDown(t *testing.T) {
	var late atomic.Int64
	for i := 0; i < 20 && late.Load() == 0; i++ {
		running := make(chan struct{}, 1)
		var mu sync.Mutex
		calls := 0
		h, b := newRestoredHelper(t, func(ctx context.Context, info helper.BrokerRestoredInfo) error {
			mu.Lock()
			calls++
			if ctx.Err() != nil {
				late.Add(1)
			}
			mu.Unlock()
			running <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		})
		b.restore(time.Millisecond)
		<-running
		b.restore(time.Millisecond) // Redis flapping while the handler runs
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = h.Shutdown(ctx)
		cancel()
		mu.Lock()
		n := calls
		mu.Unlock()
		if n > 2 {
			t.Fatalf("%d calls", n)
		}
	}
	if late.Load() > 0 {
		t.Fatal("the broker-restored handler was called again after Shutdown had ended its context")
	}
}

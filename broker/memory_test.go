package broker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/fxws/websocket/broker"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sink records what a broker's handler receives.
type sink struct {
	mu  sync.Mutex
	got []string
}

func (s *sink) handler(channel string, payload []byte) {
	s.mu.Lock()
	s.got = append(s.got, channel+"="+string(payload))
	s.mu.Unlock()
}

func (s *sink) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.got
	s.got = nil
	return out
}

func started(t *testing.T, b *broker.Memory) *sink {
	t.Helper()
	s := &sink{}
	if err := b.Start(context.Background(), s.handler); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return s
}

func TestMemoryHubDelivery(t *testing.T) {
	ctx := context.Background()
	hub := broker.NewMemoryHub()
	a, b := hub.NewBroker(), hub.NewBroker()
	sa, sb := started(t, a), started(t, b)
	if err := a.Subscribe(ctx, "ws:broadcast", "ws:room:x"); err != nil {
		t.Fatal(err)
	}
	if err := b.Subscribe(ctx, "ws:broadcast"); err != nil {
		t.Fatal(err)
	}
	if !a.Subscribed("ws:room:x") || b.Subscribed("ws:room:x") {
		t.Fatal("Subscribed wrong")
	}
	_ = b.Publish(ctx, "ws:broadcast", []byte("1"))
	_ = b.Publish(ctx, "ws:room:x", []byte("2"))
	_ = b.Publish(ctx, "ws:room:nobody", []byte("3"))
	// Publish reaches every subscriber, the publisher included.
	if got := sa.take(); !slices.Equal(got, []string{"ws:broadcast=1", "ws:room:x=2"}) {
		t.Fatalf("a got %v", got)
	}
	if got := sb.take(); !slices.Equal(got, []string{"ws:broadcast=1"}) {
		t.Fatalf("b got %v", got)
	}
	_ = a.Unsubscribe(ctx, "ws:room:x", "never-subscribed")
	_ = b.Publish(ctx, "ws:room:x", []byte("4"))
	if got := sa.take(); len(got) != 0 {
		t.Fatalf("a got %v after unsubscribing", got)
	}
	// Separate hubs are separate clusters.
	c := broker.NewMemory()
	sc := started(t, c)
	_ = c.Subscribe(ctx, "ws:broadcast")
	_ = a.Publish(ctx, "ws:broadcast", []byte("5"))
	if got := sc.take(); len(got) != 0 {
		t.Fatalf("other hub got %v", got)
	}
}

func TestMemoryOrderPerChannel(t *testing.T) {
	ctx := context.Background()
	hub := broker.NewMemoryHub()
	a, b := hub.NewBroker(), hub.NewBroker()
	started(t, a)
	sb := started(t, b)
	_ = b.Subscribe(ctx, "ch")
	var want []string
	for i := 0; i < 100; i++ {
		_ = a.Publish(ctx, "ch", []byte(fmt.Sprint(i)))
		want = append(want, fmt.Sprintf("ch=%d", i))
	}
	if got := sb.take(); !slices.Equal(got, want) {
		t.Fatalf("order: %v", got)
	}
}

func TestMemoryClose(t *testing.T) {
	ctx := context.Background()
	hub := broker.NewMemoryHub()
	a, b := hub.NewBroker(), hub.NewBroker()
	sa := &sink{}
	_ = a.Start(ctx, sa.handler)
	started(t, b)
	_ = a.Subscribe(ctx, "ch")
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	_ = b.Publish(ctx, "ch", []byte("x"))
	if got := sa.take(); len(got) != 0 {
		t.Fatalf("closed broker got %v", got)
	}
	for name, err := range map[string]error{
		"Publish":   a.Publish(ctx, "ch", nil),
		"Subscribe": a.Subscribe(ctx, "ch"),
		"Start":     a.Start(ctx, sa.handler),
	} {
		if !errors.Is(err, broker.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	if a.Subscribed("ch") {
		t.Fatal("closed broker still subscribed")
	}
}

// Concurrent use from many goroutines is safe (run with -race).
func TestMemoryConcurrent(t *testing.T) {
	ctx := context.Background()
	hub := broker.NewMemoryHub()
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		b := hub.NewBroker()
		started(t, b)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				ch := fmt.Sprintf("ch%d", j%5)
				_ = b.Subscribe(ctx, ch)
				_ = b.Publish(ctx, ch, []byte("p"))
				_ = b.Unsubscribe(ctx, ch)
			}
		}()
	}
	wg.Wait()
}

// A Subscribe racing Close never leaves the closed broker in the hub.
func TestMemorySubscribeRacingClose(t *testing.T) {
	ctx := context.Background()
	hub := broker.NewMemoryHub()
	for i := 0; i < 2000; i++ {
		m := hub.NewBroker()
		_ = m.Start(ctx, func(string, []byte) {})
		done := make(chan struct{})
		go func() { defer close(done); _ = m.Subscribe(ctx, "ch") }()
		_ = m.Close()
		<-done
		if m.Subscribed("ch") {
			t.Fatalf("run %d: a closed broker is still in the hub", i)
		}
	}
}

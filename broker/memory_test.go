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

// Concurrent use from many goroutines is safe (run with -race) and keeps
// the broker's promises while subscriptions churn: a broker subscribed to a
// channel gets its own publish on it before Publish returns, exactly once
// (however often it subscribed); a broker subscribed throughout gets every
// publish exactly once, each publisher's in order; once everyone has
// unsubscribed, nothing is delivered.
func TestMemoryConcurrent(t *testing.T) {
	ctx := context.Background()
	hub := broker.NewMemoryHub()
	const brokers, rounds, channels = 8, 200, 5
	chans := make([]string, channels)
	for i := range chans {
		chans[i] = fmt.Sprintf("ch%d", i)
	}

	// listener stays subscribed to every channel throughout.
	listener := hub.NewBroker()
	var (
		lmu  sync.Mutex
		lgot = map[string]int{} // publisher/channel → messages received
		lbad []string
	)
	if err := listener.Start(ctx, func(channel string, payload []byte) {
		var p, j int
		if _, err := fmt.Sscanf(string(payload), "%d:%d", &p, &j); err != nil {
			lmu.Lock()
			lbad = append(lbad, fmt.Sprintf("bad payload %q", payload))
			lmu.Unlock()
			return
		}
		key := fmt.Sprintf("%d/%s", p, channel)
		lmu.Lock()
		// Publisher p sends j on chans[j%channels], so on one channel its
		// sequence goes j, j+channels, …
		if want := lgot[key]*channels + j%channels; j != want {
			lbad = append(lbad, fmt.Sprintf("%s: got %d, want %d", key, j, want))
		}
		lgot[key]++
		lmu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = listener.Close() })
	if err := listener.Subscribe(ctx, chans...); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	all := make([]*broker.Memory, brokers)
	for i := range all {
		b := hub.NewBroker()
		all[i] = b
		var (
			mu  sync.Mutex
			own = map[int]int{} // round → deliveries of this broker's own publish
		)
		if err := b.Start(ctx, func(channel string, payload []byte) {
			var p, j int
			if _, err := fmt.Sscanf(string(payload), "%d:%d", &p, &j); err == nil && p == i {
				mu.Lock()
				own[j]++
				mu.Unlock()
			}
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < rounds; j++ {
				ch := chans[j%channels]
				if err := b.Subscribe(ctx, ch); err != nil {
					t.Errorf("broker %d: Subscribe: %v", i, err)
					return
				}
				if j%2 == 0 { // a channel already held: no second delivery
					if err := b.Subscribe(ctx, ch); err != nil {
						t.Errorf("broker %d: second Subscribe: %v", i, err)
						return
					}
				}
				if !b.Subscribed(ch) {
					t.Errorf("broker %d: not subscribed to %s after Subscribe", i, ch)
					return
				}
				if err := b.Publish(ctx, ch, []byte(fmt.Sprintf("%d:%d", i, j))); err != nil {
					t.Errorf("broker %d: Publish: %v", i, err)
					return
				}
				mu.Lock()
				n := own[j]
				mu.Unlock()
				if n != 1 {
					t.Errorf("broker %d round %d: own publish delivered %d times by the time Publish returned, want 1", i, j, n)
					return
				}
				if err := b.Unsubscribe(ctx, ch); err != nil {
					t.Errorf("broker %d: Unsubscribe: %v", i, err)
					return
				}
				if b.Subscribed(ch) {
					t.Errorf("broker %d: still subscribed to %s after Unsubscribe", i, ch)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	lmu.Lock()
	if len(lbad) > 0 {
		t.Errorf("listener: %d deliveries out of order or malformed, first: %v", len(lbad), lbad[:min(len(lbad), 5)])
	}
	for p := 0; p < brokers; p++ {
		for c, ch := range chans {
			want := rounds / channels
			if c < rounds%channels {
				want++
			}
			if got := lgot[fmt.Sprintf("%d/%s", p, ch)]; got != want {
				t.Errorf("listener got %d of publisher %d's messages on %s, want %d", got, p, ch, want)
			}
		}
	}
	lmu.Unlock()

	// Everyone unsubscribed: nothing reaches any of them any more.
	if err := listener.Unsubscribe(ctx, chans...); err != nil {
		t.Fatal(err)
	}
	late := hub.NewBroker()
	sl := started(t, late)
	for _, ch := range chans {
		for i, b := range append(all, listener) {
			if b.Subscribed(ch) {
				t.Errorf("broker %d still subscribed to %s", i, ch)
			}
		}
		if err := late.Publish(ctx, ch, []byte("late")); err != nil {
			t.Fatal(err)
		}
	}
	lmu.Lock()
	total := 0
	for _, n := range lgot {
		total += n
	}
	lmu.Unlock()
	if total != brokers*rounds {
		t.Errorf("listener got %d messages in all, want %d (late publishes reached it?)", total, brokers*rounds)
	}
	if got := sl.take(); len(got) != 0 {
		t.Errorf("unsubscribed publisher got %v", got)
	}
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

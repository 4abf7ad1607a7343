package helper_test

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/helper"
)

// During a ShutdownSpread the clients not closed yet are still served
// (they join, leave and get messages): a server change of their rooms is
// told as at any other time, not held back until the client is closed
// and then undone from its disconnect callback's rooms.
func TestRoomsChangedByServerDuringShutdownSpread(t *testing.T) {
	p := newPresence()
	k := newKit(t, rawSocket, func(cfg *helper.Config) {
		p.install(cfg)
		cfg.Options.ShutdownSpread = 3 * time.Second
	})
	var last string
	for _, u := range []string{"a", "b", "c"} {
		c, cd := k.login(u)
		p.waitFor(t, "the connected callback", func() bool { return p.ready[cd.ID] })
		go func() { _, _, _ = c.ExpectClose(context.Background()) }()
		last = cd.ID // the newest: closed last, 2 s into the spread
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- k.h.Shutdown(ctx) }()
	p.waitFor(t, "the oldest client's disconnect", func() bool { return len(p.gone) > 0 })
	if !k.h.JoinRoom(last, "late") {
		t.Fatal("JoinRoom on a client the spread has not closed yet")
	}
	p.waitFor(t, "the join told, or the client gone", func() bool {
		_, gone := p.gone[last]
		return gone || slices.Contains(p.events, "+late srv")
	})
	p.mu.Lock()
	told := slices.Contains(p.events, "+late srv")
	_, gone := p.gone[last]
	p.mu.Unlock()
	if !told {
		t.Errorf("a server join of a client still open during the spread was not told (client gone: %v)", gone)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	p.check(t)
}

// A join of the client's own that a kick made during its room check
// undoes entirely leaves nothing behind in the rooms-changed log: the
// entry of a client with nothing to tell goes (a log entry per such
// client would stay until it leaves, and keep the log's map from being
// made afresh after a crowd).
func TestRoomsChangedByServerCancelledJoinLeavesNoLog(t *testing.T) {
	p := newPresence()
	var inCheck <-chan struct{}
	var release chan struct{}
	k := newKit(t, rawSocket, func(cfg *helper.Config) {
		p.install(cfg)
		inCheck, release = holdRoomCheck(cfg, "general")
	})
	ctx := context.Background()
	c, cd := k.login("mallory")
	p.waitFor(t, "the connected callback", func() bool { return p.ready[cd.ID] })
	if err := c.Join("general"); err != nil {
		t.Fatal(err)
	}
	<-inCheck
	if err := k.h.RemoveUserFromRooms(ctx, "mallory", "general"); err != nil {
		t.Fatal(err)
	}
	close(release)
	roundTrip(t, c)
	if got := p.takeEvents(); len(got) != 0 {
		t.Fatalf("told %v", got)
	}
	if k.h.InRoom(cd.ID, "general") {
		t.Fatal("the kicked room was joined")
	}
	if n := k.h.RoomsChangedLogs(); n != 0 {
		t.Fatalf("%d rooms-changed logs kept for a client with nothing to tell", n)
	}
	p.check(t)
}

// stalledSubscribes is a broker whose Subscribe, once stalled, waits
// until it is let go (a Redis that does not answer).
type stalledSubscribes struct {
	broker.Broker
	stalled atomic.Bool
	release chan struct{}
}

func (b *stalledSubscribes) Subscribe(ctx context.Context, channels ...string) error {
	if b.stalled.Load() {
		select {
		case <-b.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return b.Broker.Subscribe(ctx, channels...)
}

// A server join's call waits for the room's subscription (as a join of
// the client's own does), but not past the client's end: a client that
// leaves meanwhile has its disconnect callback at once, not once
// SubscribeTimeout has passed (without the option a server join held up
// nothing at all).
func TestRoomsChangedByServerJoinWaitingForTheBrokerDoesNotHoldTheDisconnect(t *testing.T) {
	p := newPresence()
	b := &stalledSubscribes{Broker: broker.NewMemory(), release: make(chan struct{})}
	defer close(b.release)
	k := newKit(t, rawSocket, func(cfg *helper.Config) {
		p.install(cfg)
		cfg.Broker = b
		cfg.Options.SubscribeTimeout = 4 * time.Second
	})
	c, cd := k.login("ann")
	p.waitFor(t, "the connected callback", func() bool { return p.ready[cd.ID] })
	b.stalled.Store(true)
	k.h.JoinRoom(cd.ID, "new-room") // a room new to the instance: its subscription stalls
	time.Sleep(quiet)
	began := time.Now()
	if _, err := k.h.Disconnect(cd.ID, 4000, "bye"); err != nil {
		t.Fatal(err)
	}
	expectClose(t, c, 4000, "bye")
	p.waitFor(t, "the disconnect callback", func() bool { _, ok := p.gone[cd.ID]; return ok })
	if d := time.Since(began); d > 2*time.Second {
		t.Fatalf("the disconnect callback came %v after the close: it waited for the subscription of a room it was never told of", d)
	}
	if got := p.takeEvents(); len(got) != 0 {
		t.Fatalf("told %v", got)
	}
	p.mu.Lock()
	rooms := p.gone[cd.ID].Rooms
	p.mu.Unlock()
	if slices.Contains(rooms, "new-room") {
		t.Fatalf("the disconnect callback's rooms %v hold a join never told", rooms)
	}
	p.check(t)
}

// Nothing is told once the client's context has ended, the client's own
// changes included: a join of its own that completes after the server
// closed it (its room check was running) is not told, and is not in the
// disconnect callback's rooms either.
func TestRoomsChangedByServerOwnJoinNotToldAfterTheContextEnded(t *testing.T) {
	p := newPresence()
	var late atomic.Int32
	var inCheck <-chan struct{}
	var release chan struct{}
	k := newKit(t, rawSocket, func(cfg *helper.Config) {
		p.install(cfg)
		inCheck, release = holdRoomCheck(cfg, "slow")
		told := cfg.Handlers.RoomsChanged
		cfg.Handlers.RoomsChanged = func(ctx context.Context, req helper.RoomsChangedRequest) error {
			if ctx.Err() != nil {
				late.Add(1)
			}
			return told(ctx, req)
		}
	})
	c, cd := k.login("ann")
	p.waitFor(t, "the connected callback", func() bool { return p.ready[cd.ID] })
	if err := c.Join("slow", "other"); err != nil {
		t.Fatal(err)
	}
	<-inCheck
	if _, err := k.h.Disconnect(cd.ID, 4000, "bye"); err != nil {
		t.Fatal(err)
	}
	expectClose(t, c, 4000, "bye")
	close(release)
	p.waitFor(t, "the disconnect callback", func() bool { _, ok := p.gone[cd.ID]; return ok })
	if n := late.Load(); n > 0 {
		t.Errorf("%d rooms-changed calls after the client's context ended; told %v", n, p.takeEvents())
	}
	p.check(t)
}

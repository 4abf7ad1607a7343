package helper_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/protocol"
)

// presence is the app of the README's presence recipe, kept by the book: a
// client's rooms from the connected callback's ClientInfo.Rooms, each
// rooms-changed call applied to them, the disconnect callback's
// ClientInfo.Rooms removed. It records, as an error, whatever would make
// such an app go wrong: a call before the connected callback returned or
// after the disconnect callback began, two calls of one client at once, a
// room joined that the client was in already or left that it was not in,
// and a disconnect callback whose rooms are not those the app holds.
type presence struct {
	mu      sync.Mutex
	changed chan struct{}
	rooms   map[string]map[string]bool // by client id, from the connected callback on
	ready   map[string]bool            // connected callback returned
	gone    map[string]helper.ClientInfo
	inCall  map[string]int
	events  []string // "+room srv", "-room own", "msg <event>": the rooms-changed calls and messages, flattened, in order
	calls   []helper.RoomsChangedRequest
	errs    []string

	// during, if set, runs inside each rooms-changed call, after it is
	// recorded (to hold a call, or slow it down).
	during func(req helper.RoomsChangedRequest)
	// inConnected, if set, runs inside the connected callback.
	inConnected func(info helper.ClientInfo)
}

func newPresence() *presence {
	return &presence{
		changed: make(chan struct{}),
		rooms:   map[string]map[string]bool{},
		ready:   map[string]bool{},
		gone:    map[string]helper.ClientInfo{},
		inCall:  map[string]int{},
	}
}

func (p *presence) signalLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *presence) errorf(format string, args ...any) {
	p.errs = append(p.errs, fmt.Sprintf(format, args...))
}

// install puts the presence callbacks in cfg, with RoomsChangedByServer.
func (p *presence) install(cfg *helper.Config) {
	cfg.Options.RoomsChangedByServer = true
	cfg.Handlers.ValidateRoom = func(_ context.Context, req helper.ValidateRoomRequest) ([]string, error) {
		return req.Rooms, nil
	}
	cfg.Handlers.ClientConnected = func(_ context.Context, info helper.ClientInfo) error {
		p.mu.Lock()
		set := map[string]bool{}
		for _, r := range info.Rooms {
			set[r] = true
		}
		p.rooms[info.ClientID] = set
		p.mu.Unlock()
		if p.inConnected != nil {
			p.inConnected(info)
		}
		p.mu.Lock()
		p.ready[info.ClientID] = true
		p.signalLocked()
		p.mu.Unlock()
		return nil
	}
	cfg.Handlers.RoomsChanged = func(_ context.Context, req helper.RoomsChangedRequest) error {
		p.mu.Lock()
		id := req.ClientID
		p.inCall[id]++
		if p.inCall[id] > 1 {
			p.errorf("%s: two rooms-changed calls at once", id)
		}
		if !p.ready[id] {
			p.errorf("%s: rooms-changed %+v before the connected callback returned", id, req)
		}
		if _, ok := p.gone[id]; ok {
			p.errorf("%s: rooms-changed %+v after the disconnect callback began", id, req)
		}
		if len(req.Joined) > 0 == (len(req.Left) > 0) {
			p.errorf("%s: rooms-changed with joined %v and left %v", id, req.Joined, req.Left)
		}
		by := map[bool]string{true: "srv", false: "own"}[req.ByServer]
		set := p.rooms[id]
		for _, r := range req.Joined {
			if set[r] {
				p.errorf("%s: told of a join of %q, which it was in (%s)", id, r, by)
			}
			if r == id {
				p.errorf("%s: told of its own-id room", id)
			}
			set[r] = true
			p.events = append(p.events, "+"+r+" "+by)
		}
		for _, r := range req.Left {
			if !set[r] {
				p.errorf("%s: told of a leave of %q, which it was not in (%s)", id, r, by)
			}
			delete(set, r)
			p.events = append(p.events, "-"+r+" "+by)
		}
		p.calls = append(p.calls, req)
		p.signalLocked()
		p.mu.Unlock()
		if p.during != nil {
			p.during(req)
		}
		p.mu.Lock()
		p.inCall[id]--
		p.signalLocked()
		p.mu.Unlock()
		return nil
	}
	cfg.Handlers.ClientDisconnected = func(_ context.Context, info helper.ClientInfo) error {
		p.mu.Lock()
		defer p.mu.Unlock()
		id := info.ClientID
		if p.inCall[id] > 0 {
			p.errorf("%s: the disconnect callback began while a rooms-changed call ran", id)
		}
		if set, ok := p.rooms[id]; ok {
			var held []string
			for r := range set {
				held = append(held, r)
			}
			slices.Sort(held)
			if !slices.Equal(held, info.Rooms) {
				p.errorf("%s: the disconnect callback's rooms %v, the app holds %v", id, info.Rooms, held)
			}
		} else if info.Connected {
			p.errorf("%s: a disconnect callback for a connected client the connected callback never saw", id)
		}
		delete(p.rooms, id)
		p.gone[id] = info
		p.signalLocked()
		return nil
	}
	cfg.Handlers.Message = func(_ context.Context, req helper.MessageRequest) error {
		p.mu.Lock()
		p.events = append(p.events, "msg "+req.Message.Event)
		p.signalLocked()
		p.mu.Unlock()
		return nil
	}
}

// waitFor waits until cond (called under the lock) holds.
func (p *presence) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		p.mu.Lock()
		ok, ch := cond(), p.changed
		p.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			p.mu.Lock()
			defer p.mu.Unlock()
			t.Fatalf("timed out waiting for %s; events %v", what, p.events)
		}
	}
}

// takeEvents returns the events so far and forgets them.
func (p *presence) takeEvents() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.events
	p.events = nil
	return out
}

// waitEvents waits for n events and returns them (forgotten).
func (p *presence) waitEvents(t *testing.T, n int) []string {
	t.Helper()
	p.waitFor(t, fmt.Sprintf("%d events", n), func() bool { return len(p.events) >= n })
	return p.takeEvents()
}

// check fails the test with the errors recorded.
func (p *presence) check(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.errs {
		t.Error(e)
	}
	p.errs = nil
}

// held is the app's rooms of client id, sorted.
func (p *presence) held(id string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for r := range p.rooms[id] {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}

// actualRooms is id's rooms on h, sorted, its own-id room left out.
func actualRooms(h *helper.WebSocketServerHelper, id string) []string {
	v, ok := h.GetClient(id)
	if !ok {
		return nil
	}
	return slices.DeleteFunc(v.Rooms, func(r string) bool { return r == id })
}

func expectEvents(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("told %v, want %v", got, want)
	}
}

// Each server-side entry point is told once, with ByServer, of the rooms
// it really changed: a join of a room the client is in, a leave of one it
// is not in, and its own-id room are not told. A join of the client's own
// made after them is told after them (so nothing of theirs is left to
// come), without ByServer. The disconnect callback's rooms are then the
// app's.
func TestRoomsChangedByServerEachEntryPoint(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		p := newPresence()
		k := newKit(t, tr, p.install)
		ctx := context.Background()
		c, cd := k.login("ann")
		p.waitFor(t, "the connected callback", func() bool { return p.ready[cd.ID] })
		id := cd.ID

		if !k.h.JoinRoom(id, "s1") {
			t.Fatal("JoinRoom")
		}
		expectEvents(t, p.waitEvents(t, 1), "+s1 srv")
		k.h.JoinRoom(id, "s1")                 // in it already
		k.h.JoinRoom(id, protocol.DefaultRoom) // a default room: in it already
		k.h.LeaveRoom(id, "s1")
		expectEvents(t, p.waitEvents(t, 1), "-s1 srv")
		k.h.LeaveRoom(id, "never-in")
		k.h.LeaveRoom(id, id) // its own-id room: not told either way
		k.h.JoinRoom(id, id)
		if err := k.h.AddUserToRooms(ctx, "ann", "a", "b", protocol.DefaultRoom); err != nil {
			t.Fatal(err)
		}
		expectEvents(t, p.waitEvents(t, 2), "+a srv", "+b srv")
		if err := k.h.RemoveUserFromRooms(ctx, "ann", "a", "never-in"); err != nil {
			t.Fatal(err)
		}
		expectEvents(t, p.waitEvents(t, 1), "-a srv")
		if err := c.Join("own"); err != nil {
			t.Fatal(err)
		}
		roundTrip(t, c)
		expectEvents(t, p.takeEvents(), "+own own")
		p.mu.Lock()
		for _, req := range p.calls {
			if req.ClientID != id || req.UserID != "ann" || req.Metadata["role"] != "user" || req.ByServer != !slices.Contains(req.Joined, "own") {
				t.Errorf("a call without the client's identity, or ByServer wrong: %+v", req)
			}
		}
		p.mu.Unlock()
		if got, want := p.held(id), actualRooms(k.h, id); !slices.Equal(got, want) {
			t.Fatalf("the app holds %v, the client is in %v", got, want)
		}
		_ = c.Close()
		p.waitFor(t, "the disconnect callback", func() bool { _, ok := p.gone[id]; return ok })
		p.check(t)
	})
}

// Off by default: the server's changes call nothing, as before.
func TestRoomsChangedByServerOffByDefault(t *testing.T) {
	p := newPresence()
	k := newKit(t, rawSocket, func(cfg *helper.Config) {
		p.install(cfg)
		cfg.Options.RoomsChangedByServer = false
	})
	ctx := context.Background()
	c, cd := k.login("ann")
	p.waitFor(t, "the connected callback", func() bool { return p.ready[cd.ID] })
	k.h.JoinRoom(cd.ID, "s1")
	k.h.LeaveRoom(cd.ID, protocol.DefaultRoom)
	if err := k.h.AddUserToRooms(ctx, "ann", "a"); err != nil {
		t.Fatal(err)
	}
	if err := k.h.RemoveUserFromRooms(ctx, "ann", "s1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Join("own"); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c)
	time.Sleep(quiet)
	expectEvents(t, p.takeEvents(), "+own own")
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, req := range p.calls {
		if req.ByServer {
			t.Fatalf("a call with ByServer without the option: %+v", req)
		}
	}
}

// The calls for one client come one at a time, in the order the changes
// were made, the server's and the client's own together: a join of the
// client's own waits for a server change's call under way, and comes after
// the server's changes made before it, and before the client's next
// message. JoinRoom does not wait for the call.
func TestRoomsChangedByServerInOrderWithOwnJoin(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		p := newPresence()
		inCall := make(chan struct{}, 1)
		release := make(chan struct{})
		p.during = func(req helper.RoomsChangedRequest) {
			if slices.Contains(req.Joined, "s1") {
				inCall <- struct{}{}
				<-release
			}
		}
		k := newKit(t, tr, p.install)
		c, cd := k.login("ann")
		p.waitFor(t, "the connected callback", func() bool { return p.ready[cd.ID] })
		id := cd.ID

		k.h.JoinRoom(id, "s1")
		<-inCall
		began := time.Now()
		k.h.JoinRoom(id, "s2")
		k.h.LeaveRoom(id, protocol.DefaultRoom)
		if d := time.Since(began); d > time.Second {
			t.Fatalf("JoinRoom and LeaveRoom waited %v for the rooms-changed call under way", d)
		}
		// The client's own join and leave of a room the server took it
		// out of, then a message: they wait for the call under way.
		if err := c.Join("c1", protocol.DefaultRoom); err != nil {
			t.Fatal(err)
		}
		if err := c.Emit("after-join", 1); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		if got := p.takeEvents(); !slices.Equal(got, []string{"+s1 srv"}) {
			t.Fatalf("told %v while the first call was held", got)
		}
		close(release)
		expectEvents(t, p.waitEvents(t, 5),
			"+s2 srv", "-"+protocol.DefaultRoom+" srv", "+c1 own", "+"+protocol.DefaultRoom+" own", "msg after-join")
		k.h.LeaveRoom(id, "c1")
		expectEvents(t, p.waitEvents(t, 1), "-c1 srv")
		roundTrip(t, c)
		if got, want := p.held(id), actualRooms(k.h, id); !slices.Equal(got, want) {
			t.Fatalf("the app holds %v, the client is in %v", got, want)
		}
		p.check(t)
	})
}

// An order travels twice (broadcast channel, user's channel) and is
// applied once; so it is told once, on the instance holding the
// connection, even with the copies far apart. The instance that made it,
// holding no connection of the user, tells nothing.
func TestRoomsChangedByServerOnceForBothCopies(t *testing.T) {
	hub := broker.NewMemoryHub()
	pa, pb := newPresence(), newPresence()
	a := newKit(t, rawSocket, func(cfg *helper.Config) { pa.install(cfg); cfg.Broker = hub.NewBroker() })
	b := newKit(t, rawSocket, func(cfg *helper.Config) {
		pb.install(cfg)
		cfg.Broker = &lateBroadcasts{Broker: hub.NewBroker(), delay: 200 * time.Millisecond}
	})
	ctx := context.Background()
	c, cd := b.login("dave")
	pb.waitFor(t, "the connected callback", func() bool { return pb.ready[cd.ID] })
	if err := a.h.AddUserToRooms(ctx, "dave", "doc", protocol.DefaultRoom); err != nil {
		t.Fatal(err)
	}
	expectEvents(t, pb.waitEvents(t, 1), "+doc srv")
	time.Sleep(300 * time.Millisecond) // the late copy has come
	if err := a.h.RemoveUserFromRooms(ctx, "dave", "doc"); err != nil {
		t.Fatal(err)
	}
	expectEvents(t, pb.waitEvents(t, 1), "-doc srv")
	time.Sleep(300 * time.Millisecond)
	if err := c.Join("marker"); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c)
	expectEvents(t, pb.takeEvents(), "+marker own")
	if got := pa.takeEvents(); len(got) != 0 {
		t.Fatalf("the instance that made the order, holding no connection, told %v", got)
	}
	pa.check(t)
	pb.check(t)
}

// A server join racing authentication is in the connected callback's
// rooms, if made before it, and told after the connected callback has
// returned otherwise: never both, never neither, never before.
func TestRoomsChangedByServerAroundAuthentication(t *testing.T) {
	p := newPresence()
	inAuth, releaseAuth := make(chan struct{}), make(chan struct{})
	inConnected, releaseConnected := make(chan struct{}), make(chan struct{})
	p.inConnected = func(helper.ClientInfo) {
		close(inConnected)
		<-releaseConnected
	}
	k := newKit(t, rawSocket, func(cfg *helper.Config) {
		p.install(cfg)
		auth := cfg.Handlers.Authenticate
		cfg.Handlers.Authenticate = func(ctx context.Context, req helper.AuthenticateRequest) (*helper.AuthResult, error) {
			close(inAuth)
			<-releaseAuth
			return auth(ctx, req)
		}
	})
	c := k.dial()
	if err := c.Emit(protocol.EventAuthenticate, map[string]any{"token": "valid-ann"}); err != nil {
		t.Fatal(err)
	}
	<-inAuth
	var id string
	for _, v := range k.h.GetClients() {
		id = v.ID
	}
	if !k.h.JoinRoom(id, "early") {
		t.Fatal("JoinRoom on a client authenticating")
	}
	close(releaseAuth)
	<-inConnected
	k.h.JoinRoom(id, "during")
	time.Sleep(quiet)
	if got := p.takeEvents(); len(got) != 0 {
		t.Fatalf("told %v while the connected callback ran", got)
	}
	close(releaseConnected)
	expectEvents(t, p.waitEvents(t, 1), "+during srv")
	expectEvent(t, c, protocol.EventConnected)
	roundTrip(t, c)
	if got := p.takeEvents(); len(got) != 0 {
		t.Fatalf("told %v more", got)
	}
	if got := p.held(id); !slices.Contains(got, "early") || !slices.Contains(got, "during") {
		t.Fatalf("the app holds %v; want early (from the connected callback) and during (told)", got)
	}
	_ = c.Close()
	p.waitFor(t, "the disconnect callback", func() bool { _, ok := p.gone[id]; return ok })
	p.check(t)
}

// A call under way when the client leaves returns before the disconnect
// callback begins; nothing is told after it; and what was not told (the
// client left first) is not in the disconnect callback's rooms (a join) or
// still is (a leave): they are the rooms the app was told of.
func TestRoomsChangedByServerNothingAfterDisconnect(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		p := newPresence()
		inCall := make(chan struct{}, 1)
		release := make(chan struct{})
		p.during = func(req helper.RoomsChangedRequest) {
			if slices.Contains(req.Joined, "x") {
				inCall <- struct{}{}
				<-release // ignores its context: the disconnect callback waits
			}
		}
		k := newKit(t, tr, p.install)
		c, cd := k.login("ann")
		p.waitFor(t, "the connected callback", func() bool { return p.ready[cd.ID] })
		id := cd.ID
		k.h.JoinRoom(id, "x")
		<-inCall
		k.h.JoinRoom(id, "y")
		k.h.LeaveRoom(id, protocol.DefaultRoom)
		if _, err := k.h.Disconnect(id, 4000, "bye"); err != nil {
			t.Fatal(err)
		}
		expectClose(t, c, 4000, "bye")
		time.Sleep(quiet)
		p.mu.Lock()
		_, gone := p.gone[id]
		p.mu.Unlock()
		if gone {
			t.Fatal("the disconnect callback began while a rooms-changed call ran")
		}
		close(release)
		p.waitFor(t, "the disconnect callback", func() bool { _, ok := p.gone[id]; return ok })
		time.Sleep(quiet)
		expectEvents(t, p.takeEvents(), "+x srv")
		p.mu.Lock()
		rooms := p.gone[id].Rooms
		p.mu.Unlock()
		if want := []string{protocol.DefaultRoom, protocol.DefaultNotificationRoom, "x"}; !slices.Equal(rooms, want) {
			t.Fatalf("the disconnect callback's rooms %v, want %v (y never told, the leave of %s neither)", rooms, want, protocol.DefaultRoom)
		}
		p.check(t)
		// A client that is gone: nothing.
		k.h.JoinRoom(id, "z")
		time.Sleep(quiet)
		if got := p.takeEvents(); len(got) != 0 {
			t.Fatalf("told %v for a client that is gone", got)
		}
	})
}

// The error or panic of a call for a server change is logged and counted,
// as any other callback's; the client stays.
func TestRoomsChangedByServerHandlerErrorsCounted(t *testing.T) {
	p := newPresence()
	p.during = func(req helper.RoomsChangedRequest) {
		if slices.Contains(req.Joined, "panic") {
			panic("rooms-changed exploded")
		}
	}
	k := newKit(t, rawSocket, func(cfg *helper.Config) {
		p.install(cfg)
		inner := cfg.Handlers.RoomsChanged
		cfg.Handlers.RoomsChanged = func(ctx context.Context, req helper.RoomsChangedRequest) error {
			err := inner(ctx, req)
			if slices.Contains(req.Joined, "error") {
				return errors.New("store down")
			}
			return err
		}
	})
	c, cd := k.login("ann")
	p.waitFor(t, "the connected callback", func() bool { return p.ready[cd.ID] })
	before := k.h.Stats().HandlerErrors
	k.h.JoinRoom(cd.ID, "error")
	p.waitFor(t, "the first call", func() bool { return len(p.events) == 1 })
	k.h.JoinRoom(cd.ID, "panic")
	p.waitFor(t, "the second call", func() bool { return len(p.events) == 2 })
	eventually(t, "two handler errors counted", func() bool { return k.h.Stats().HandlerErrors == before+2 })
	roundTrip(t, c)
	p.mu.Lock()
	p.inCall[cd.ID] = 0 // the panic skipped the presence's own bookkeeping
	p.mu.Unlock()
}

// Many hands on the rooms of many clients at once: server-side joins and
// leaves here, user orders from here and from another instance, the
// clients' own joins and leaves, clients coming (server joins racing their
// authentication) and going. The app's presence, kept from the callbacks
// alone, is right throughout (no call told a change that did not happen),
// matches the clients' rooms once things are quiet, and matches each
// disconnect callback's rooms.
func TestRoomsChangedByServerPresenceStaysRight(t *testing.T) {
	for _, tr := range []transport{rawSocket, rawGoroutine} {
		t.Run(string(tr), func(t *testing.T) {
			hub := broker.NewMemoryHub()
			p := newPresence()
			p.during = func(helper.RoomsChangedRequest) {
				if rand.IntN(4) == 0 {
					time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
				}
			}
			a := newKit(t, tr, func(cfg *helper.Config) { cfg.Broker = hub.NewBroker() })
			b := newKit(t, tr, func(cfg *helper.Config) { p.install(cfg); cfg.Broker = hub.NewBroker() })
			ctx := context.Background()
			rooms := []string{"r0", "r1", "r2", "r3", "r4", protocol.DefaultRoom}
			users := []string{"u0", "u1", "u2"}
			pick := func() []string {
				var out []string
				for _, r := range rooms {
					if rand.IntN(3) == 0 {
						out = append(out, r)
					}
				}
				if len(out) == 0 {
					out = append(out, rooms[rand.IntN(len(rooms))])
				}
				return out
			}

			type conn struct {
				c  *fxtest.Client
				id string
			}
			var mu sync.Mutex
			var live []conn
			for i := range 6 {
				c, cd := b.login(users[i%len(users)])
				live = append(live, conn{c, cd.ID})
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var ops atomic.Int64
			run := func(f func()) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						select {
						case <-stop:
							return
						default:
						}
						f()
						ops.Add(1)
						time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond)
					}
				}()
			}
			// Server-side joins and leaves on every client here,
			// authenticating ones included.
			run(func() {
				vs := b.h.GetClients()
				if len(vs) == 0 {
					return
				}
				id := vs[rand.IntN(len(vs))].ID
				if rand.IntN(2) == 0 {
					b.h.JoinRoom(id, rooms[rand.IntN(len(rooms))])
				} else {
					b.h.LeaveRoom(id, rooms[rand.IntN(len(rooms))])
				}
			})
			// User orders, from here and from the other instance.
			for _, h := range []*helper.WebSocketServerHelper{a.h, b.h} {
				run(func() {
					u := users[rand.IntN(len(users))]
					if rand.IntN(2) == 0 {
						_ = h.AddUserToRooms(ctx, u, pick()...)
					} else {
						_ = h.RemoveUserFromRooms(ctx, u, pick()...)
					}
				})
			}
			// The clients' own joins and leaves.
			run(func() {
				mu.Lock()
				cn := live[rand.IntN(len(live))]
				mu.Unlock()
				if rand.IntN(2) == 0 {
					_ = cn.c.Join(pick()...)
				} else {
					_ = cn.c.Leave(pick()...)
				}
			})
			// Clients coming and going.
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
					c, err := fxtest.Dial(ctx, b.url)
					if err != nil {
						t.Error(err)
						return
					}
					cd, err := c.Authenticate(ctx, map[string]any{"token": "valid-" + users[i%len(users)]})
					if err != nil {
						t.Error(err)
						_ = c.Abort()
						return
					}
					mu.Lock()
					j := rand.IntN(len(live))
					old := live[j]
					live[j] = conn{c, cd.ID}
					mu.Unlock()
					if i%2 == 0 {
						_ = old.c.Close()
					} else {
						_ = old.c.Abort()
					}
				}
			}()
			time.Sleep(time.Second)
			close(stop)
			wg.Wait()
			mu.Lock()
			final := slices.Clone(live)
			mu.Unlock()
			for _, cn := range final {
				if err := cn.c.Sync(ctx); err != nil {
					t.Fatal(err)
				}
			}
			// Quiet now: the app holds what each client is in.
			for _, cn := range final {
				eventually(t, "the app's rooms of "+cn.id+" to match", func() bool {
					return slices.Equal(p.held(cn.id), actualRooms(b.h, cn.id))
				})
			}
			p.mu.Lock()
			n := len(p.calls)
			var byServer int
			for _, req := range p.calls {
				if req.ByServer {
					byServer++
				}
			}
			p.mu.Unlock()
			t.Logf("%d operations, %d rooms-changed calls, %d of them for the server's changes", ops.Load(), n, byServer)
			if byServer == 0 || byServer == n {
				t.Fatalf("%d calls, %d for the server's: want both kinds", n, byServer)
			}
			for _, cn := range final {
				_ = cn.c.Close()
			}
			p.waitFor(t, "every disconnect callback", func() bool {
				for _, cn := range final {
					if _, ok := p.gone[cn.id]; !ok {
						return false
					}
				}
				return true
			})
			p.check(t)
			if t.Failed() {
				p.mu.Lock()
				t.Log(strings.Join(p.events, "\n"))
				p.mu.Unlock()
			}
		})
	}
}

// A kick made while the client's own join of the room was in its room
// check wins (see TestRemoveUserFromRoomsWinsOverAJoinUnderWay): the join
// and the leave that undoes it cancel out, and neither is told; the rest
// of the join is told as the client's own.
func TestRoomsChangedByServerKickDuringAJoinTellsNeither(t *testing.T) {
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
	if err := c.Join("general", "random"); err != nil {
		t.Fatal(err)
	}
	<-inCheck
	if err := k.h.RemoveUserFromRooms(ctx, "mallory", "general"); err != nil {
		t.Fatal(err)
	}
	close(release)
	roundTrip(t, c)
	expectEvents(t, p.takeEvents(), "+random own")
	if k.h.InRoom(cd.ID, "general") {
		t.Fatal("the kicked room was joined")
	}
	// Invited back by the server: told as the server's.
	if err := k.h.AddUserToRooms(ctx, "mallory", "general"); err != nil {
		t.Fatal(err)
	}
	expectEvents(t, p.waitEvents(t, 1), "+general srv")
	_ = c.Close()
	p.waitFor(t, "the disconnect callback", func() bool { _, ok := p.gone[cd.ID]; return ok })
	p.check(t)
}

// A user order made on another instance while the user's only connection
// here authenticates is applied when the authentication completes, before
// `connected` (see fences): it is in the connected callback's rooms, and
// not told as well.
func TestRoomsChangedByServerOrderDuringAuthenticationIsInConnectedRooms(t *testing.T) {
	hub := broker.NewMemoryHub()
	p := newPresence()
	inAuth, release := make(chan struct{}), make(chan struct{})
	a := newKit(t, rawSocket, func(cfg *helper.Config) { cfg.Broker = hub.NewBroker() })
	b := newKit(t, rawSocket, func(cfg *helper.Config) {
		p.install(cfg)
		cfg.Broker = hub.NewBroker()
		auth := cfg.Handlers.Authenticate
		cfg.Handlers.Authenticate = func(ctx context.Context, req helper.AuthenticateRequest) (*helper.AuthResult, error) {
			close(inAuth)
			<-release
			return auth(ctx, req)
		}
	})
	ctx := context.Background()
	c := b.dial()
	if err := c.Emit(protocol.EventAuthenticate, map[string]any{"token": "valid-dave"}); err != nil {
		t.Fatal(err)
	}
	<-inAuth
	if err := a.h.AddUserToRooms(ctx, "dave", "general"); err != nil {
		t.Fatal(err)
	}
	if err := a.h.RemoveUserFromRooms(ctx, "dave", protocol.DefaultRoom); err != nil {
		t.Fatal(err)
	}
	close(release)
	expectEvent(t, c, protocol.EventConnected)
	var id string
	p.waitFor(t, "the connected callback", func() bool {
		for cid, ok := range p.ready {
			id = cid
			return ok
		}
		return false
	})
	if got, want := p.held(id), []string{"general", protocol.DefaultNotificationRoom}; !slices.Equal(got, want) {
		t.Fatalf("the connected callback's rooms %v, want %v", got, want)
	}
	if err := c.Join("marker"); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c)
	expectEvents(t, p.takeEvents(), "+marker own")
	p.check(t)
}

package helper_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/protocol"
	"github.com/gobwas/ws/wsutil"
)

// stalledClient authenticates over a raw connection whose receive buffer is
// small and that never reads again: the slowest possible client.
func (k *kit) stalledClient(user string) (net.Conn, string) {
	k.t.Helper()
	return k.rawClient(user, 4096)
}

// rawClient authenticates over a raw connection that reads only when the
// test does; rcvbuf > 0 shrinks its receive buffer.
func (k *kit) rawClient(user string, rcvbuf int) (net.Conn, string) {
	k.t.Helper()
	conn := k.rawDial()
	if tc, ok := conn.(*net.TCPConn); ok && rcvbuf > 0 {
		_ = tc.SetReadBuffer(rcvbuf)
	}
	if err := wsutil.WriteClientText(conn, []byte(`{"event":"authenticate","data":{"token":"valid-`+user+`"}}`)); err != nil {
		k.t.Fatal(err)
	}
	var id string
	eventually(k.t, "stalled client authenticated", func() bool {
		for _, v := range k.h.GetClientsByUser(user) {
			id = v.ID
			return true
		}
		return false
	})
	return conn, id
}

// The slow-client proof: one of N clients never reads; the others
// still get every message, and no send call waits for the stalled socket.
// The broadcaster keeps at most `window` messages ahead of the slowest
// reader (so readers never approach the backpressure limit themselves) and
// nothing of the stalled client: were any send to wait for it, the loop
// would stall and the test time out.
func TestSlowClientDelaysNobody(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		const (
			readers  = 7
			messages = 300
			size     = 16 << 10 // 300 × 16 KiB ≈ 4.7 MiB: far past 1 MiB + socket buffers
			window   = 16       // 256 KiB in flight per reader at most
		)
		k := newKit(t, tr, func(c *helper.Config) {
			c.Options.WriteTimeout = time.Minute // the stalled client is dropped from, not cut
		}, withSendBuffer(32<<10))
		_, stalledID := k.stalledClient("stalled")
		var clients []*fxtest.Client
		for i := 0; i < readers; i++ {
			c, _ := k.login("reader")
			clients = append(clients, c)
		}
		slowestReader := func() int {
			m := int(^uint(0) >> 1)
			for _, c := range clients {
				m = min(m, c.Received()-1) // minus `connected`
			}
			return m
		}
		payload := strings.Repeat("x", size)
		var slowest time.Duration
		start := time.Now()
		for i := 0; i < messages; i++ {
			eventually(t, "readers within the window", func() bool { return slowestReader() >= i-window })
			t0 := time.Now()
			n, err := k.h.Broadcast("bulk", payload)
			slowest = max(slowest, time.Since(t0))
			if err != nil {
				t.Fatal(err)
			}
			if n < readers {
				t.Fatalf("broadcast %d reached %d clients, want ≥ %d (readers must never be dropped)", i, n, readers)
			}
		}
		eventually(t, "every message at every reader", func() bool { return slowestReader() >= messages })
		t.Logf("%s: %d × %d B to %d readers + 1 stalled: all delivered in %v; slowest Broadcast call %v; dropped for the stalled client: %d",
			tr, messages, size, readers, time.Since(start), slowest, k.h.Stats().DroppedBackpressure)
		if k.h.Stats().DroppedBackpressure == 0 {
			t.Fatalf("nothing dropped for the stalled client: %+v", k.h.Stats())
		}
		if _, ok := k.h.GetClient(stalledID); !ok {
			t.Fatal("stalled client closed although CloseOnBackpressureLimit is off")
		}
		for _, c := range clients {
			if n := len(c.Messages()); n != messages {
				t.Fatalf("reader got %d messages, want %d", n, messages)
			}
		}
	})
}

// closeOnBackpressureLimit closes the stalled client (4008) instead.
func TestCloseOnBackpressureLimit(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, func(c *helper.Config) {
			c.Options.CloseOnBackpressureLimit = true
			c.Options.BackpressureLimit = 64 << 10
		}, withSendBuffer(32<<10))
		conn, id := k.stalledClient("stalled")
		reader, _ := k.login("reader")
		payload := strings.Repeat("y", 16<<10)
		for i := 0; i < 400 && !k.rec.hasDisconnected(id); i++ {
			_, _ = k.h.SendToClient(id, "bulk", payload)
		}
		k.rec.waitFor(t, "stalled client closed", func() bool { return slicesContains(k.rec.disconnected, id) })
		if k.h.Stats().DroppedBackpressure == 0 {
			t.Fatal("drop not counted")
		}
		// What the stalled client finds when it finally reads: data, then
		// 4008, or the end of the stream if the close frame, queued behind
		// the data it would not read, was still unsent when the server gave
		// up on it.
		_, code, reason := readUntilCloseOrEOF(t, conn)
		if code != 0 && (code != protocol.CloseBackpressure || reason != protocol.ReasonBackpressure) {
			t.Fatalf("close %d %q", code, reason)
		}
		_, _ = k.h.Broadcast("after", 1)
		expectEvent(t, reader, "after")
	})
}

// A client that accepts nothing for WriteTimeout is disconnected.
func TestWriteTimeout(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, func(c *helper.Config) {
			c.Options.WriteTimeout = 200 * time.Millisecond
			c.Options.BackpressureLimit = 64 << 20
		})
		_, id := k.stalledClient("stalled")
		_, _ = k.h.SendToClient(id, "big", strings.Repeat("z", 8<<20))
		k.rec.waitFor(t, "stalled client cut", func() bool { return slicesContains(k.rec.disconnected, id) })
		// The callback can tell a client too slow from one gone.
		k.rec.mu.Lock()
		defer k.rec.mu.Unlock()
		for _, d := range k.rec.disconnected {
			if d.ClientID == id && (d.CloseCode != 1006 || d.CloseReason != helper.ReasonWriteTimeout || d.ClosedBy != "") {
				t.Fatalf("disconnect callback saw %d %q by %q, want 1006 %q by nobody", d.CloseCode, d.CloseReason, d.ClosedBy, helper.ReasonWriteTimeout)
			}
		}
	})
}

// The write timeout bounds a stretch without progress: a client that reads
// steadily gets a message that takes many timeouts to write. 64 KiB every
// 10 ms (at most 6.4 MiB/s) takes 8 MiB through several 500 ms timeouts;
// only a reader stalled for fifty of its reads would be cut. (At 200 ms the
// test failed once under go test -race -cpu 1,2 on a loaded machine.)
func TestSlowButSteadyReaderIsNotCut(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		readPaced(t, tr, 500*time.Millisecond, 8<<20, 0, 10*time.Millisecond)
	})
}

// WriteTimeout is the longest a client may take nothing, not a minimum
// speed: 64 KiB every 300 ms, with a receive buffer that small, moves
// 256 KiB (one writer batch) in 1.2 s, more than the 1 s timeout, but no
// timeout passes without a read (and a reader stalled 700 ms by a loaded
// machine is still within it). When each batch had to go out within one
// timeout, this reader was cut at its first.
func TestSlowReaderIsCutOnlyWithoutProgress(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		readPaced(t, tr, time.Second, 512<<10, 64<<10, 300*time.Millisecond)
	})
}

// readPaced sends a client one message of size bytes under a write
// timeout of wt, and reads it 64 KiB at a time, one read every pause (with
// a receive buffer of rcvbuf bytes, 0: the system's). It fails the test if
// the server cuts the client.
func readPaced(t *testing.T, tr transport, wt time.Duration, size, rcvbuf int, pause time.Duration) {
	t.Helper()
	k := newKit(t, tr, func(c *helper.Config) {
		c.Options.WriteTimeout = wt
		c.Options.BackpressureLimit = 2 * size
	}, withSendBuffer(32<<10))
	conn, id := k.rawClient("paced", rcvbuf)
	_, _ = k.h.SendToClient(id, "big", strings.Repeat("p", size))
	buf := make([]byte, 64<<10)
	total := 0
	start := time.Now()
	for total < size {
		time.Sleep(pause)
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("cut after %d bytes (%v): %v", total, time.Since(start), err)
		}
		total += n
	}
	if k.rec.hasDisconnected(id) {
		t.Fatal("paced reader disconnected")
	}
	t.Logf("%s: %d KiB read in %v with a %v write timeout", tr, size>>10, time.Since(start), wt)
}

// A client that was once slow (its writes queued, under a write deadline)
// and then caught up keeps receiving long after that deadline has passed.
func TestOnceSlowClientKeepsReceiving(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		const wt = 300 * time.Millisecond
		k := newKit(t, tr, func(c *helper.Config) { c.Options.WriteTimeout = wt }, withSendBuffer(32<<10))
		c, cd := k.login("u1")
		// Bigger than the socket buffers: part of it must be queued.
		_, _ = k.h.SendToClient(cd.ID, "big", strings.Repeat("q", 2<<20))
		expectEvent(t, c, "big")
		time.Sleep(wt + wt/2) // the deadline of the last queued write has passed
		for i := 0; i < 3; i++ {
			_, _ = k.h.SendToClient(cd.ID, "small", i)
			expectEvent(t, c, "small")
		}
		if c.Closed() || len(k.rec.disconnectedIDs()) != 0 {
			t.Fatal("client dropped after an old write deadline")
		}
	})
}

// Spec "Disconnect": indexes emptied (empty entries dropped), client
// removed, callback with its identity; a failing callback harms nothing.
func TestDisconnectCleanup(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, nil)
		keep, _ := k.login("keeper")
		c, cd := k.login("leaver")
		_ = c.Join("solo-room")
		roundTrip(t, c)
		before := k.h.Stats()
		_ = c.Close()
		k.rec.waitFor(t, "disconnect callback", func() bool { return len(k.rec.disconnected) == 1 })
		got := k.rec.disconnected[0]
		if got.ClientID != cd.ID || got.UserID != "leaver" || got.Metadata["role"] != "user" {
			t.Fatalf("disconnect callback %+v", got)
		}
		s := k.h.Stats()
		if s.Clients != 1 || s.Authenticated != 1 || s.Users != 1 || s.Rooms != before.Rooms-2 {
			t.Fatalf("stats before %+v after %+v", before, s)
		}
		if len(k.h.GetClientsByUser("leaver")) != 0 || len(k.h.GetClientsByRoom("solo-room")) != 0 || len(k.h.GetClientsByRoom(cd.ID)) != 0 {
			t.Fatal("indexes still hold the client")
		}
		if ok, _ := k.h.SendToClient(cd.ID, "x", 1); ok {
			t.Fatal("gone client still addressable")
		}
		// Abrupt drop: same path.
		d, dcd := k.login("dropper")
		_ = d.Abort()
		k.rec.waitFor(t, "abort disconnect", func() bool { return slicesContains(k.rec.disconnected, dcd.ID) })
		roundTrip(t, keep)
	})
	t.Run("callback fails", func(t *testing.T) {
		for _, mode := range []string{"error", "panic"} {
			k := newKit(t, rawSocket, func(c *helper.Config) {
				c.Handlers.ClientDisconnected = func(context.Context, helper.ClientInfo) error {
					if mode == "panic" {
						panic("disconnect exploded")
					}
					return context.Canceled
				}
			})
			keep, _ := k.login("keeper")
			c, _ := k.login("leaver")
			_ = c.Close()
			eventually(t, "client removed", func() bool { return k.h.Stats().Clients == 1 })
			roundTrip(t, keep)
		}
	})
}

// Spec "Shutdown": 1001 to everyone, disconnect callbacks fire, indexes
// cleared, broker closed; a client that never answers cannot hold it up
// beyond the close grace; callbacks waiting on their context are released.
func TestShutdown(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		entered := make(chan struct{}, 1)
		k := newKit(t, tr, func(c *helper.Config) {
			rec := c.Handlers.Message
			c.Handlers.Message = func(ctx context.Context, req helper.MessageRequest) error {
				if req.Message.Event == "wait-for-ctx" {
					entered <- struct{}{}
					<-ctx.Done()
				}
				return rec(ctx, req)
			}
		})
		var clients []*fxtest.Client
		for i := 0; i < 4; i++ {
			c, _ := k.login("u")
			clients = append(clients, c)
		}
		busy, _ := k.login("busy")
		_ = busy.Emit("wait-for-ctx", nil)
		<-entered
		unauth := k.dial()
		// The helper registers a connection just after writing its 101, so
		// Dial can return first; one that Shutdown beats to it is closed
		// with 1001 unregistered, without a disconnect callback. A round
		// trip shows it registered.
		roundTrip(t, unauth)
		stalled, _ := k.stalledClient("stalled")
		_ = stalled
		total := len(clients) + 3

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		if err := k.h.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		t.Logf("%s: shutdown of %d clients took %v", tr, total, time.Since(start))
		for _, c := range append(clients, busy, unauth) {
			expectClose(t, c, protocol.CloseGoingAway, protocol.ReasonShuttingDown)
		}
		k.rec.mu.Lock()
		n := len(k.rec.disconnected)
		k.rec.mu.Unlock()
		if n != total {
			t.Fatalf("%d disconnect callbacks, want %d", n, total)
		}
		s := k.h.Stats()
		if s.Clients != 0 || s.Authenticated != 0 || s.Rooms != 0 || s.Users != 0 {
			t.Fatalf("stats after shutdown %+v", s)
		}
		if err := k.h.Send(context.Background(), "", "late", 1); err == nil {
			t.Fatal("publish after shutdown succeeded")
		}
		if err := k.h.Shutdown(ctx); err != nil {
			t.Fatalf("second Shutdown: %v", err)
		}
	})
}

// A callback that ignores its context cannot make Shutdown outlive its ctx.
func TestShutdownDeadline(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	k := newKit(t, rawSocket, func(c *helper.Config) {
		c.Handlers.Message = func(ctx context.Context, req helper.MessageRequest) error {
			entered <- struct{}{}
			<-release
			return nil
		}
	})
	c, _ := k.login("stuck")
	_ = c.Emit("hang", nil)
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- k.h.Shutdown(ctx) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Shutdown reported success with a callback still running")
		}
		t.Logf("Shutdown: %v", err)
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("Shutdown did not return after its context ended")
	}
	close(release)
	eventually(t, "stuck read loop ends", func() bool { return k.h.Stats().Clients == 0 })
}

func (r *recorder) hasDisconnected(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slicesContains(r.disconnected, id)
}

func slicesContains(infos []helper.ClientInfo, id string) bool {
	for _, i := range infos {
		if i.ClientID == id {
			return true
		}
	}
	return false
}

// Connections arriving while Shutdown runs are refused (503) or, if they
// slipped past that check, closed with 1001; clients open before it are
// closed with 1001; every registered connection gets its disconnect
// callback and none is left behind (goleak checks the read loops).
func TestShutdownWhileDialing(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		// The holder's disconnect callback keeps Shutdown running (it
		// waits for every connection's callback) until the test has
		// dialed into the middle of it.
		holding := make(chan struct{})
		release := make(chan struct{})
		var releaseOnce sync.Once
		unblock := func() { releaseOnce.Do(func() { close(release) }) }
		defer unblock()
		k := newKit(t, tr, func(c *helper.Config) {
			record := c.Handlers.ClientDisconnected
			c.Handlers.ClientDisconnected = func(ctx context.Context, info helper.ClientInfo) error {
				if info.UserID == "holder" {
					close(holding)
					<-release
				}
				return record(ctx, info)
			}
		})
		holder, _ := k.login("holder")
		resident, _ := k.login("resident")

		var (
			stop        = make(chan struct{})
			stopOnce    sync.Once
			wg          sync.WaitGroup
			mu          sync.Mutex
			served      int // authenticated, then dropped by the client
			refused     int // 503 at the upgrade
			closedEarly int // upgraded, then closed 1001 before or after authenticating
		)
		count := func(n *int) { mu.Lock(); *n++; mu.Unlock() }
		halt := func() { stopOnce.Do(func() { close(stop) }); wg.Wait() }
		defer halt()
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					c, err := fxtest.Dial(context.Background(), k.url)
					if err != nil {
						if !isStatus(err, http.StatusServiceUnavailable) {
							t.Errorf("dial: %v, want success or 503", err)
							return
						}
						count(&refused)
						continue
					}
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					_, aerr := c.Authenticate(ctx, map[string]any{"token": "valid-u"})
					cancel()
					if aerr == nil {
						count(&served)
						_ = c.Abort()
						continue
					}
					// Not served: the only acceptable reason is the
					// shutdown's close frame.
					code, reason, err := c.ExpectClose(context.Background())
					_ = c.Abort()
					if err != nil || int(code) != protocol.CloseGoingAway || reason != protocol.ReasonShuttingDown {
						t.Errorf("authenticate: %v; close = %d %q (%v), want %d %q",
							aerr, code, reason, err, protocol.CloseGoingAway, protocol.ReasonShuttingDown)
						return
					}
					count(&closedEarly)
				}
			}()
		}
		// Let the dialers get going before shutting down under them.
		eventually(t, "clients served before shutdown", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return served >= 8
		})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- k.h.Shutdown(ctx) }()

		// Shutdown is under way (it closed the holder) and cannot finish
		// before release: a new connection now is refused.
		select {
		case <-holding:
		case <-time.After(5 * time.Second):
			t.Fatal("Shutdown did not close the holder")
		}
		if c, err := fxtest.Dial(context.Background(), k.url); err == nil {
			_ = c.Abort()
			t.Fatal("a dial during Shutdown was upgraded")
		} else if !isStatus(err, http.StatusServiceUnavailable) {
			t.Fatalf("dial during Shutdown: %v, want 503", err)
		}
		select {
		case err := <-done:
			t.Fatalf("Shutdown returned (%v) with a disconnect callback still running", err)
		default:
		}
		unblock()
		if err := <-done; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		halt()
		expectClose(t, holder, protocol.CloseGoingAway, protocol.ReasonShuttingDown)
		expectClose(t, resident, protocol.CloseGoingAway, protocol.ReasonShuttingDown)
		if c, err := fxtest.Dial(context.Background(), k.url); err == nil {
			_ = c.Abort()
			t.Fatal("a dial after Shutdown was upgraded")
		} else if !isStatus(err, http.StatusServiceUnavailable) {
			t.Fatalf("dial after Shutdown: %v, want 503", err)
		}
		if s := k.h.Stats(); s.Clients != 0 || s.Authenticated != 0 {
			t.Fatalf("clients left after shutdown: %+v", s)
		}
		// Every connection that was registered has had its disconnect
		// callback, exactly once.
		k.rec.mu.Lock()
		seen := map[string]int{}
		for _, d := range k.rec.disconnected {
			seen[d.ClientID]++
		}
		var missing []string
		for _, c := range k.rec.connected {
			if seen[c.ClientID] != 1 {
				missing = append(missing, fmt.Sprintf("%s (%d callbacks)", c.ClientID, seen[c.ClientID]))
			}
		}
		nconn, ndisc := len(k.rec.connected), len(k.rec.disconnected)
		k.rec.mu.Unlock()
		if len(missing) > 0 {
			t.Fatalf("authenticated clients without exactly one disconnect callback: %v", missing)
		}
		mu.Lock()
		t.Logf("%s: served %d, refused %d, closed 1001 %d; %d connected, %d disconnect callbacks",
			tr, served, refused, closedEarly, nconn, ndisc)
		mu.Unlock()
	})
}

// A client that stopped reading shows in its Backlog (the helper's queue
// and the kernel's send queue), and with a small SendBufferSize the kernel
// holds little of what it is sent: BackpressureLimit, not the kernel's
// megabytes, decides how far behind it may fall (from a game-server trial:
// 20 s of stale ticks, with nothing to tell).
func TestBacklogAndSendBufferSize(t *testing.T) {
	k := newKit(t, rawSocket, func(c *helper.Config) {
		c.Options.SendBufferSize = 8 << 10
		c.Options.BackpressureLimit = 64 << 10
		c.Options.CloseOnBackpressureLimit = true
	})
	reader, rcd := k.login("reader")
	_, id := k.stalledClient("stalled")
	tick := strings.Repeat("t", 1000)
	for i := 0; i < 20; i++ {
		if _, err := k.h.SendToClient(id, "tick", tick); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the stalled client's backlog seen", func() bool {
		v, ok := k.h.GetClient(id)
		return ok && v.Backlog > 0
	})
	if _, err := k.h.SendToClient(rcd.ID, "tick", tick); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, reader, "tick")
	eventually(t, "the reader's backlog gone", func() bool {
		v, ok := k.h.GetClient(rcd.ID)
		return ok && v.Backlog == 0
	})
	// 8 KiB of socket buffer (16 doubled by Linux, a few more in the
	// client's receive buffer) and 64 KiB of queue: 200 ticks of 1 KB are
	// past them.
	for i := 0; i < 200; i++ {
		if v, ok := k.h.GetClient(id); !ok || v.State == protocol.StateDisconnected {
			break
		}
		_, _ = k.h.SendToClient(id, "tick", tick)
	}
	k.rec.waitFor(t, "the stalled client closed at the backpressure limit", func() bool { return slicesContains(k.rec.disconnected, id) })
	k.rec.mu.Lock()
	defer k.rec.mu.Unlock()
	for _, d := range k.rec.disconnected {
		if d.ClientID == id && d.CloseCode != protocol.CloseBackpressure {
			t.Fatalf("closed with %d %q, want %d", d.CloseCode, d.CloseReason, protocol.CloseBackpressure)
		}
	}
}

package fxtest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	websocket "github.com/fxws/websocket"
	"github.com/fxws/websocket/broker/redisbroker"
	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
	"github.com/gobwas/ws"
	"go.uber.org/fx"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStartFailsClearly(t *testing.T) {
	// No authenticate handler: the error names the binding, and the
	// listener the kit opened is released.
	if _, err := fxtest.Start(); err == nil || !strings.Contains(err.Error(), "@app/websocket/authenticate-handler") {
		t.Fatalf("Start without an authenticate handler: %v", err)
	}
}

func TestServerURLs(t *testing.T) {
	srv := fxtest.StartServer(t,
		websocket.WithAuthenticate(authenticate),
		websocket.WithServerOptions(websocket.ServerOptions{}),
	)
	host, _, err := net.SplitHostPort(srv.Addr())
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("Addr %q", srv.Addr())
	}
	if srv.URL() != "ws://"+srv.Addr()+"/ws" || srv.HTTPURL() != "http://"+srv.Addr() {
		t.Fatalf("URL %s HTTPURL %s", srv.URL(), srv.HTTPURL())
	}
	c, id := srv.Connect(t, map[string]string{"token": "u"})
	if _, ok := srv.Helper().GetClient(id); !ok {
		t.Fatal("connected client unknown to the helper")
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if code, _, _ := c.ExpectClose(context.Background()); code != 1001 {
		t.Errorf("close %d after Stop, want 1001", code)
	}
}

func TestStartClusterOnHub(t *testing.T) {
	servers := fxtest.StartCluster(t, 3, "", websocket.WithAuthenticate(authenticate))
	ctx := context.Background()
	var clients []*fxtest.Client
	for i, s := range servers {
		c, _ := s.Connect(t, map[string]string{"token": string(rune('a' + i))})
		clients = append(clients, c)
	}
	if err := servers[2].Helper().Send(ctx, "", "all", 1); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		if _, err := c.Expect(ctx, "all"); err != nil {
			t.Fatal(err)
		}
	}
}

// ExpectAny with no events takes the next message, whatever its event.
func TestExpectAnyWithoutEvents(t *testing.T) {
	srv := fxtest.StartServer(t, websocket.WithAuthenticate(authenticate))
	c, id := srv.Connect(t, map[string]string{"token": "u"})
	if ok, err := srv.Helper().SendToClient(id, "hello", 1); !ok || err != nil {
		t.Fatalf("SendToClient = %v, %v", ok, err)
	}
	m, err := c.ExpectAny(context.Background())
	if err != nil || m.Event != "hello" {
		t.Fatalf("ExpectAny() = %+v, %v; want the hello message", m, err)
	}
}

// WaitJoined returns once a client's join has been taken and the rooms'
// channels are held, so that a send from another instance reaches it; it
// names the rooms a client never joined.
func TestWaitJoined(t *testing.T) {
	servers := fxtest.StartCluster(t, 2, "",
		websocket.WithAuthenticate(authenticate),
		websocket.WithValidateRoom(func(_ context.Context, req helper.ValidateRoomRequest) ([]string, error) {
			var ok []string
			for _, r := range req.Rooms {
				if !strings.HasPrefix(r, "deny-") {
					ok = append(ok, r)
				}
			}
			return ok, nil
		}),
	)
	ctx := context.Background()
	c, id := servers[0].Connect(t, map[string]string{"token": "j"})
	for i := range 20 { // a join, then at once a send from the other instance
		room := "room-" + strconv.Itoa(i)
		if err := c.Join(room); err != nil {
			t.Fatal(err)
		}
		if err := servers[0].WaitJoined(ctx, id, room); err != nil {
			t.Fatal(err)
		}
		if err := servers[1].Helper().Send(ctx, room, "hi", i); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Expect(ctx, "hi"); err != nil {
			t.Fatalf("send to %s after WaitJoined: %v", room, err)
		}
	}
	if err := c.Join("deny-x"); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := servers[0].WaitJoined(short, id, "room-0", "deny-x"); err == nil || !strings.Contains(err.Error(), "[deny-x]") {
		t.Fatalf("WaitJoined for a refused room: %v, want an error naming it", err)
	}
	if err := servers[1].WaitJoined(short, id, "room-0"); err == nil || !strings.Contains(err.Error(), "not on this instance") {
		t.Fatalf("WaitJoined on the wrong instance: %v", err)
	}
}

// Sync waits for everything the client sent, so that a join, a leave and
// a join again are all handled before the test looks; WaitLeft waits for a
// leave (both asked for in a user trial, whose test lost messages to a
// WaitJoined that saw the first of several toggles).
func TestSyncAndWaitLeft(t *testing.T) {
	servers := fxtest.StartCluster(t, 2, "",
		websocket.WithAuthenticate(authenticate),
		websocket.WithValidateRoom(func(_ context.Context, req helper.ValidateRoomRequest) ([]string, error) {
			time.Sleep(time.Millisecond) // a room check that takes a moment
			return req.Rooms, nil
		}),
	)
	ctx := context.Background()
	c, id := servers[0].Connect(t, map[string]string{"token": "s"})
	for i := range 20 {
		_ = c.Join("doc")
		_ = c.Leave("doc")
		_ = c.Join("doc")
		if i%2 == 1 {
			_ = c.Leave("doc")
		}
		if err := c.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		view, _ := servers[0].Helper().GetClient(id)
		if in := slices.Contains(view.Rooms, "doc"); in != (i%2 == 0) {
			t.Fatalf("round %d: after Sync the client is in doc: %v, want %v", i, in, i%2 == 0)
		}
	}
	if err := servers[0].WaitLeft(ctx, id, "doc"); err != nil {
		t.Fatal(err)
	}
	_ = c.Join("doc")
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := servers[0].WaitJoined(ctx, id, "doc"); err != nil {
		t.Fatal(err)
	}
	if err := servers[0].WaitLeft(short, id, "doc"); err == nil || !strings.Contains(err.Error(), "still in [doc]") {
		t.Fatalf("WaitLeft for a room the client is in: %v", err)
	}
	// Gone from the instance is left too.
	_ = c.Close()
	if err := servers[0].WaitLeft(ctx, id, "doc"); err != nil {
		t.Fatal(err)
	}
	if err := c.Sync(ctx); !errors.Is(err, fxtest.ErrClosed) {
		t.Fatalf("Sync on a closed client: %v", err)
	}
}

// An app that fails to build gets no stop: the Redis client WithRedis made
// for it is closed by Start all the same (its goroutines would leak).
// (From a user trial.)
func TestWithRedisClosedWhenTheBuildFails(t *testing.T) {
	_, err := fxtest.Start(websocket.WithAuthenticate(func(context.Context, helper.AuthenticateRequest) (*helper.AuthResult, error) { return nil, nil }),
		fxtest.WithRedis("127.0.0.1:1"), fxtest.WithHub(fxtest.NewHub()))
	if err == nil || !strings.Contains(err.Error(), "both a Redis connection") {
		t.Fatalf("build error %v, want both a Redis connection and a broker", err)
	}
	goleak.VerifyNone(t)
}

// StartRedis gives a test a real Redis it can take away: two instances on
// it, a send across them, Redis killed and back, and the send across them
// again (a publish in the second before the instances have subscribed
// again reaches nobody, so the test sends until one arrives).
func TestStartRedisRestart(t *testing.T) {
	r := fxtest.StartRedis(t)
	srvs := fxtest.StartCluster(t, 2, r.Addr(), websocket.WithAuthenticate(authenticate))
	c, id := srvs[1].Connect(t, map[string]string{"token": "bob"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srvs[0].Helper().Send(ctx, id, "hello", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Expect(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	r.Kill()
	if err := srvs[0].Helper().Send(ctx, id, "lost", 2); err == nil {
		t.Error("a send with Redis gone succeeded")
	}
	r.Restart()
	back := time.Now()
	for n := 0; ; n++ {
		_ = srvs[0].Helper().Send(ctx, id, "again", n)
		wait, stop := context.WithTimeout(ctx, 100*time.Millisecond)
		_, err := c.Expect(wait, "again")
		stop()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("delivery across the instances never came back")
		}
	}
	t.Logf("delivery across the instances back %v after Redis", time.Since(back).Round(time.Millisecond))
}

// WriteFrame leaves the caller's payload as it was: the same body written
// twice arrives twice (it used to be masked in place, and the second write
// sent garbage; from a user trial).
func TestWriteFrameKeepsThePayload(t *testing.T) {
	var moves atomic.Int32
	srv := fxtest.StartServer(t, websocket.WithAuthenticate(authenticate),
		websocket.WithMessageHandler(func(_ context.Context, req helper.MessageRequest) error {
			if req.Message.Event == "move" && string(req.Message.Data) == `"x1"` {
				moves.Add(1)
			}
			return nil
		}))
	c, _ := srv.Connect(t, map[string]string{"token": "alice"})
	body := []byte(`{"event":"move","data":"x1"}`)
	for range 2 {
		if err := c.WriteFrame(ws.NewTextFrame(body)); err != nil {
			t.Fatal(err)
		}
	}
	if string(body) != `{"event":"move","data":"x1"}` {
		t.Fatalf("the caller's payload changed: %q", body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for moves.Load() < 2 {
		if time.Now().After(deadline) || c.Closed() {
			t.Fatalf("%d of 2 moves handled (client closed: %v)", moves.Load(), c.Closed())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Restart on a running server is a crash and a restart: the data is gone
// (it started nothing, the old server answering the readiness check; from
// an encrypted-chat trial whose presence test so passed falsely).
func TestRedisRestartWhileRunning(t *testing.T) {
	r := fxtest.StartRedis(t)
	rc := r.Client()
	defer rc.Close()
	ctx := context.Background()
	if err := rc.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	r.Restart()
	if n, err := rc.Exists(ctx, "k").Result(); err != nil || n != 0 {
		t.Fatalf("after Restart: key there %d (%v), want a fresh server", n, err)
	}
}

// An app with REST routes of its own binds a mux, whose routes need the
// helper and so are registered from an invoke. A new user's trial found no
// way to test it with the kit ("both an HTTP mux and a listener"): the kit
// now has the module serve the app's mux on its listener.
func TestAppWithItsOwnMux(t *testing.T) {
	srv := fxtest.StartServer(t,
		websocket.WithAuthenticate(authenticate),
		fx.Provide(fx.Annotate(http.NewServeMux, fx.ResultTags(websocket.HTTPMuxKey))),
		fx.Invoke(fx.Annotate(func(mux *http.ServeMux, h *helper.WebSocketServerHelper) {
			mux.HandleFunc("POST /kick", func(w http.ResponseWriter, r *http.Request) {
				n, err := h.DisconnectUser(r.URL.Query().Get("user"), 4000, "kicked")
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				fmt.Fprint(w, n)
			})
		}, fx.ParamTags(websocket.HTTPMuxKey))),
	)
	ctx := context.Background()
	c, _ := srv.Connect(t, map[string]string{"token": "alice"})
	resp, err := http.Post(srv.HTTPURL()+"/kick?user=alice", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "1" {
		t.Fatalf("the app's route: %d %q, want 200 \"1\"", resp.StatusCode, body)
	}
	if code, reason, err := c.ExpectClose(ctx); err != nil || code != 4000 || reason != "kicked" {
		t.Fatalf("close after the kick: %d %q %v", code, reason, err)
	}
}

// Two instances on a Redis Cluster of the kit, in the sharded mode a
// cluster trial ran (it had to reach into the project's internals for a
// cluster to test on).
func TestStartRedisCluster(t *testing.T) {
	rc := fxtest.StartRedisCluster(t, 3)
	if len(rc.Masters()) != 3 || len(rc.Replicas()) != 0 || len(rc.Addrs()) != 3 {
		t.Fatalf("%d masters, %d replicas, %d addrs: want 3, 0, 3", len(rc.Masters()), len(rc.Replicas()), len(rc.Addrs()))
	}
	opts := websocket.WithServerOptions(websocket.ServerOptions{RedisBroker: redisbroker.Options{Mode: redisbroker.ModeSharded}})
	a := fxtest.StartServer(t, websocket.WithAuthenticate(authenticate), websocket.WithRedisConnection(rc.Client()), opts)
	b := fxtest.StartServer(t, websocket.WithAuthenticate(authenticate), websocket.WithRedisConnection(rc.Client()), opts)
	c, _ := b.Connect(t, map[string]string{"token": "bob"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Helper().SendToUser(ctx, "bob", "hello", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Expect(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
}

// A paused client reads nothing, so what the server sends it piles up in
// the server (its Backlog), and arrives once it resumes (asked for by a
// collaborative-editing trial, which wrote a raw client to test slow
// consumers).
func TestPausedClientBacksUpTheServer(t *testing.T) {
	srv := fxtest.StartServer(t, websocket.WithAuthenticate(authenticate),
		websocket.WithServerOptions(websocket.ServerOptions{Options: helper.Options{SendBufferSize: 4096}}))
	c, id := srv.Connect(t, map[string]string{"token": "slow"})
	c.Pause()
	before := c.Received()
	big := strings.Repeat("x", 8<<10)
	sent := 0
	for range 200 {
		if ok, err := srv.Helper().SendToClient(id, "big", big); err != nil {
			t.Fatal(err)
		} else if ok {
			sent++
		}
	}
	view, _ := srv.Helper().GetClient(id)
	if view.Backlog < 256<<10 {
		t.Fatalf("backlog %d bytes with 1.6 MB sent to a paused client, want most of it waiting", view.Backlog)
	}
	if got := c.Received(); got > before+1 { // the read under way when it paused
		t.Fatalf("a paused client received %d messages", got-before)
	}
	c.Resume()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range sent {
		if _, err := c.Expect(ctx, "big"); err != nil {
			t.Fatalf("after Resume: %v", err)
		}
	}
}

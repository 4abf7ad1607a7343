// Command fxws-interop checks that two servers of the demo contract
// (../shared/demo-contract.md) sharing one Redis deliver to each other: a
// broadcast, a room, a client and a user send made through one server's REST
// control API must reach a client connected to the other, both ways, and
// envelopes in the Ignis emitter's format published straight on Redis must
// reach clients of both. It prints one PASS or FAIL line per case and exits
// 1 if any case failed.
//
//	fxws-interop -a http://127.0.0.1:3101 -a-name ignis -a-local-user-send \
//	    -b http://127.0.0.1:3102 -b-name fxws -redis 127.0.0.1:6399
//
// `make interop` starts the original (Ignis on Bun), our demo and a Redis,
// then runs this.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fxws/websocket/fxtest"
	"github.com/redis/go-redis/v9"
)

type server struct {
	name, base, wsURL string
	// localUserSend: the server's user send reaches only its own
	// connections (the original's sendToUser), so no user envelope
	// crosses from it.
	localUserSend bool
}

type runner struct {
	timeout time.Duration
	rdb     *redis.Client
	seq     atomic.Int64
	failed  int
	passed  int
	http    *http.Client
}

func main() {
	var (
		aURL    = flag.String("a", "http://127.0.0.1:3101", "base URL of the first server")
		aName   = flag.String("a-name", "a", "name of the first server in the report")
		aLocal  = flag.Bool("a-local-user-send", false, "the first server's user send is local only (the original's documented behaviour)")
		bURL    = flag.String("b", "http://127.0.0.1:3102", "base URL of the second server")
		bName   = flag.String("b-name", "b", "name of the second server in the report")
		bLocal  = flag.Bool("b-local-user-send", false, "the second server's user send is local only")
		wsPath  = flag.String("ws-path", "/ws", "WebSocket path of both servers")
		redisAt = flag.String("redis", "", "Redis address (host:port or redis:// URL) for the emitter-envelope cases; empty skips them")
		wait    = flag.Duration("wait", 90*time.Second, "how long to wait for both servers' /healthz")
		timeout = flag.Duration("timeout", 3*time.Second, "how long a delivery may take")
	)
	flag.Parse()
	a := &server{name: *aName, base: strings.TrimRight(*aURL, "/"), localUserSend: *aLocal}
	b := &server{name: *bName, base: strings.TrimRight(*bURL, "/"), localUserSend: *bLocal}
	for _, s := range []*server{a, b} {
		s.wsURL = "ws" + strings.TrimPrefix(s.base, "http") + *wsPath
	}
	r := &runner{timeout: *timeout, http: &http.Client{Timeout: 10 * time.Second}}
	for _, s := range []*server{a, b} {
		if err := r.waitHealthy(s, *wait); err != nil {
			fmt.Printf("FAIL  %s is not healthy: %v\n", s.name, err)
			os.Exit(1)
		}
	}
	if *redisAt != "" {
		opt, err := redisOptions(*redisAt)
		if err != nil {
			fmt.Println("FAIL  redis address:", err)
			os.Exit(2)
		}
		r.rdb = redis.NewClient(opt)
		defer r.rdb.Close()
	}

	for _, dir := range [][2]*server{{a, b}, {b, a}} {
		from, to := dir[0], dir[1]
		label := from.name + " -> " + to.name
		r.report("broadcast "+label, r.broadcast(from, to))
		r.report("room      "+label, r.room(from, to))
		r.report("client    "+label, r.client(from, to))
		if from.localUserSend {
			r.report("user      "+label+" (stays local: the original's sendToUser is local only)", r.userLocal(from, to))
		} else {
			r.report("user      "+label, r.user(from, to))
		}
	}
	if r.rdb != nil {
		for _, c := range []struct {
			name string
			f    func(a, b *server) error
		}{
			{"emitter envelope toClient", r.emitClient},
			{"emitter envelope toUser", r.emitUser},
			{"emitter envelope toRoom (exclude)", r.emitRoom},
			{"emitter envelope broadcast", r.emitBroadcast},
		} {
			r.report(c.name+" -> "+a.name+" + "+b.name, c.f(a, b))
		}
	}
	fmt.Printf("%d passed, %d failed\n", r.passed, r.failed)
	if r.failed > 0 {
		os.Exit(1)
	}
}

func redisOptions(at string) (*redis.Options, error) {
	if strings.Contains(at, "://") {
		return redis.ParseURL(at)
	}
	return &redis.Options{Addr: at}, nil
}

func (r *runner) report(name string, err error) {
	if err != nil {
		r.failed++
		fmt.Printf("FAIL  %s: %v\n", name, err)
		return
	}
	r.passed++
	fmt.Printf("PASS  %s\n", name)
}

func (r *runner) waitHealthy(s *server, d time.Duration) error {
	deadline := time.Now().Add(d)
	var last error
	for time.Now().Before(deadline) {
		resp, err := r.http.Get(s.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("no healthy answer within %v: %v", d, last)
}

// nonce makes every expected payload unique to its case and attempt.
func (r *runner) nonce(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano(), r.seq.Add(1))
}

// connect opens an authenticated client on s as userID.
func (r *runner) connect(s *server, userID string) (*fxtest.Client, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := fxtest.Dial(ctx, s.wsURL)
	if err != nil {
		return nil, "", err
	}
	cd, err := c.Authenticate(ctx, map[string]string{"token": "valid-" + userID})
	if err != nil {
		_ = c.Abort()
		return nil, "", fmt.Errorf("authenticate on %s: %w", s.name, err)
	}
	return c, cd.ID, nil
}

func (r *runner) post(s *server, path string, body any) error {
	var buf bytes.Buffer
	if body != nil {
		if err := json.NewEncoder(&buf).Encode(body); err != nil {
			return err
		}
	}
	resp, err := r.http.Post(s.base+path, "application/json", &buf)
	if err != nil {
		return fmt.Errorf("POST %s%s: %w", s.name, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s%s: status %d", s.name, path, resp.StatusCode)
	}
	return nil
}

// deliver repeats send (each time with a fresh nonce) until c gets event
// carrying that nonce: a subscription made a moment ago on the receiving
// side may not be in place for the very first attempt, and a later one
// proves delivery just as well.
func (r *runner) deliver(c *fxtest.Client, event string, send func(nonce string) error) error {
	deadline := time.Now().Add(r.timeout)
	for {
		n := r.nonce(event)
		if err := send(n); err != nil {
			return err
		}
		if got, err := r.await(c, event, n, 300*time.Millisecond); got {
			return nil
		} else if err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%q never arrived within %v", event, r.timeout)
		}
	}
}

// await waits up to d for event with data {"nonce": n}.
func (r *runner) await(c *fxtest.Client, event, n string, d time.Duration) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		m, err := c.Expect(ctx, event)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return false, nil
			}
			return false, err
		}
		var data struct{ Nonce string }
		if json.Unmarshal(m.Data, &data) == nil && data.Nonce == n {
			return true, nil
		}
	}
}

func body(event, nonce string) map[string]any {
	return map[string]any{"event": event, "data": map[string]string{"nonce": nonce}}
}

func (r *runner) broadcast(from, to *server) error {
	c, _, err := r.connect(to, "interop-b")
	if err != nil {
		return err
	}
	defer c.Abort()
	return r.deliver(c, "interop-broadcast", func(n string) error {
		return r.post(from, "/ws-api/broadcast", body("interop-broadcast", n))
	})
}

func (r *runner) room(from, to *server) error {
	c, id, err := r.connect(to, "interop-r")
	if err != nil {
		return err
	}
	defer c.Abort()
	room := r.nonce("public-interop")
	if err := r.post(to, "/ws-api/clients/"+url.PathEscape(id)+"/rooms/"+url.PathEscape(room), nil); err != nil {
		return err
	}
	return r.deliver(c, "interop-room", func(n string) error {
		return r.post(from, "/ws-api/rooms/"+url.PathEscape(room)+"/send", body("interop-room", n))
	})
}

func (r *runner) client(from, to *server) error {
	c, id, err := r.connect(to, "interop-c")
	if err != nil {
		return err
	}
	defer c.Abort()
	return r.deliver(c, "interop-client", func(n string) error {
		return r.post(from, "/ws-api/clients/"+url.PathEscape(id)+"/send", body("interop-client", n))
	})
}

func (r *runner) user(from, to *server) error {
	user := r.nonce("interop-u")
	c, _, err := r.connect(to, user)
	if err != nil {
		return err
	}
	defer c.Abort()
	return r.deliver(c, "interop-user", func(n string) error {
		return r.post(from, "/ws-api/users/"+url.PathEscape(user)+"/send", body("interop-user", n))
	})
}

// userLocal checks the documented behaviour of a local-only user send: the
// user's connection on the sending server gets it, the one on the other
// server does not (checked by waiting for a later broadcast, which travels
// the same Redis).
func (r *runner) userLocal(from, to *server) error {
	user := r.nonce("interop-u")
	local, _, err := r.connect(from, user)
	if err != nil {
		return err
	}
	defer local.Abort()
	remote, _, err := r.connect(to, user)
	if err != nil {
		return err
	}
	defer remote.Abort()
	n := r.nonce("interop-user")
	if err := r.post(from, "/ws-api/users/"+url.PathEscape(user)+"/send", body("interop-user", n)); err != nil {
		return err
	}
	if got, err := r.await(local, "interop-user", n, r.timeout); err != nil || !got {
		return fmt.Errorf("the user's connection on %s got nothing (err %v)", from.name, err)
	}
	if got, _ := r.await(remote, "interop-user", n, 500*time.Millisecond); got {
		return fmt.Errorf("%s's user send crossed to %s: its local-only behaviour changed", from.name, to.name)
	}
	return nil
}

// publishEnvelope publishes what the Ignis WebSocketEmitter publishes:
// JSON.stringify({serverId:"emitter", type, target, event, data, exclude}),
// written out literally here rather than by our emitter package.
func (r *runner) publishEnvelope(channel, typ, target, event, nonce string, exclude []string) error {
	var sb strings.Builder
	sb.WriteString(`{"serverId":"emitter","type":"` + typ + `"`)
	if target != "" {
		t, _ := json.Marshal(target)
		sb.WriteString(`,"target":` + string(t))
	}
	ev, _ := json.Marshal(event)
	sb.WriteString(`,"event":` + string(ev) + `,"data":{"nonce":"` + nonce + `"}`)
	if exclude != nil {
		ex, _ := json.Marshal(exclude)
		sb.WriteString(`,"exclude":` + string(ex))
	}
	sb.WriteString("}")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return r.rdb.Publish(ctx, channel, sb.String()).Err()
}

func (r *runner) emitClient(a, b *server) error {
	for _, s := range []*server{a, b} {
		c, id, err := r.connect(s, "interop-e")
		if err != nil {
			return err
		}
		err = r.deliver(c, "interop-emit-client", func(n string) error {
			return r.publishEnvelope("ws:client:"+id, "client", id, "interop-emit-client", n, nil)
		})
		c.Abort()
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

func (r *runner) emitUser(a, b *server) error {
	user := r.nonce("interop-eu")
	ca, _, err := r.connect(a, user)
	if err != nil {
		return err
	}
	defer ca.Abort()
	cb, _, err := r.connect(b, user)
	if err != nil {
		return err
	}
	defer cb.Abort()
	var last string
	if err := r.deliver(ca, "interop-emit-user", func(n string) error {
		last = n
		return r.publishEnvelope("ws:user:"+user, "user", user, "interop-emit-user", n, nil)
	}); err != nil {
		return fmt.Errorf("%s: %w", a.name, err)
	}
	if got, err := r.await(cb, "interop-emit-user", last, r.timeout); err != nil || !got {
		return fmt.Errorf("%s: the user's connection got nothing (err %v)", b.name, err)
	}
	return nil
}

func (r *runner) emitRoom(a, b *server) error {
	room := r.nonce("public-interop-e")
	var clients []*fxtest.Client
	var ids []string
	for _, s := range []*server{a, b, b} {
		c, id, err := r.connect(s, "interop-er")
		if err != nil {
			return err
		}
		defer c.Abort()
		if err := r.post(s, "/ws-api/clients/"+url.PathEscape(id)+"/rooms/"+url.PathEscape(room), nil); err != nil {
			return err
		}
		clients = append(clients, c)
		ids = append(ids, id)
	}
	excluded := clients[2]
	var last string
	if err := r.deliver(clients[0], "interop-emit-room", func(n string) error {
		last = n
		return r.publishEnvelope("ws:room:"+room, "room", room, "interop-emit-room", n, []string{ids[2]})
	}); err != nil {
		return fmt.Errorf("%s: %w", a.name, err)
	}
	if got, err := r.await(clients[1], "interop-emit-room", last, r.timeout); err != nil || !got {
		return fmt.Errorf("%s: room member got nothing (err %v)", b.name, err)
	}
	// A marker on the same channel without exclude: once the excluded
	// client has it, anything sent before would have arrived too.
	marker := r.nonce("marker")
	if err := r.publishEnvelope("ws:room:"+room, "room", room, "interop-emit-marker", marker, nil); err != nil {
		return err
	}
	if got, err := r.await(excluded, "interop-emit-marker", marker, r.timeout); err != nil || !got {
		return fmt.Errorf("%s: the marker after the excluding message never arrived (err %v)", b.name, err)
	}
	for _, m := range excluded.Messages() {
		if m.Event == "interop-emit-room" {
			return fmt.Errorf("%s: the excluded client got the room message", b.name)
		}
	}
	return nil
}

func (r *runner) emitBroadcast(a, b *server) error {
	ca, _, err := r.connect(a, "interop-eb")
	if err != nil {
		return err
	}
	defer ca.Abort()
	cb, _, err := r.connect(b, "interop-eb")
	if err != nil {
		return err
	}
	defer cb.Abort()
	var last string
	if err := r.deliver(ca, "interop-emit-all", func(n string) error {
		last = n
		return r.publishEnvelope("ws:broadcast", "broadcast", "", "interop-emit-all", n, nil)
	}); err != nil {
		return fmt.Errorf("%s: %w", a.name, err)
	}
	if got, err := r.await(cb, "interop-emit-all", last, r.timeout); err != nil || !got {
		return fmt.Errorf("%s: got nothing (err %v)", b.name, err)
	}
	return nil
}

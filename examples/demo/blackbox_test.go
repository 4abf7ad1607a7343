package main

// Black-box tests of demo-contract.md: the demo is built with `go build`,
// run as a separate process and driven through HTTP and the fxtest protocol
// client, as any user's tests would drive it.
//
// TestContract also runs against a server that is already running, e.g. the
// original (../shared/reference/start.sh): DEMO_ADDR=127.0.0.1:3101 go test
// -run TestContract ./examples/demo. The rows that need our own process
// (SIGTERM, environment) are then left out.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/internal/redistest"
	"github.com/fxws/websocket/protocol"
	"github.com/gobwas/ws"
	"go.uber.org/goleak"
)

var demoBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fxws-demo-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	demoBinary = filepath.Join(dir, "demo")
	build := exec.Command("go", "build", "-o", demoBinary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build the demo:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// process is one running demo.
type process struct {
	cmd    *exec.Cmd
	addr   string
	exited chan struct{}
	err    error // cmd.Wait's, once exited is closed

	mu     sync.Mutex
	stderr bytes.Buffer
}

// startDemo runs the demo with env (on a kernel-chosen port unless env sets
// PORT) and waits until it logs its address.
func startDemo(t *testing.T, env ...string) *process {
	t.Helper()
	cmd := exec.Command(demoBinary)
	cmd.Env = append(os.Environ(), "HOST=127.0.0.1", "PORT=0", "REDIS_URL=", "REQUIRE_ENCRYPTION=")
	cmd.Env = append(cmd.Env, env...)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			p.mu.Lock()
			p.stderr.Write(line)
			p.stderr.WriteByte('\n')
			p.mu.Unlock()
			var entry struct{ Msg, Addr string }
			if json.Unmarshal(line, &entry) == nil && entry.Msg == "demo listening" {
				addr <- entry.Addr
			}
		}
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("demo stderr:\n%s", p.log())
		}
	})
	select {
	case p.addr = <-addr:
	case <-p.exited:
		t.Fatalf("the demo exited before listening: %v\n%s", p.err, p.log())
	case <-time.After(30 * time.Second):
		t.Fatalf("the demo did not listen within 30s\n%s", p.log())
	}
	return p
}

func (p *process) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// target is the server under test: its address and WebSocket path.
type target struct {
	t    *testing.T
	addr string
	path string
	http *http.Client
}

func newTarget(t *testing.T, addr, path string) *target {
	// No keep-alive: every request is its own connection, nothing lingers.
	return &target{t: t, addr: addr, path: path, http: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}}
}

func (tg *target) url() string { return "ws://" + tg.addr + tg.path }

// do sends a request and returns the status and body.
func (tg *target) do(method, path, body string) (int, []byte) {
	tg.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+tg.addr+path, r)
	if err != nil {
		tg.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := tg.http.Do(req)
	if err != nil {
		tg.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tg.t.Fatal(err)
	}
	return resp.StatusCode, b
}

// okPost posts and checks the contract's {"ok":true}.
func (tg *target) okPost(path, body string) {
	tg.t.Helper()
	if code, b := tg.do(http.MethodPost, path, body); code != 200 || string(b) != `{"ok":true}` {
		tg.t.Fatalf("POST %s: %d %s", path, code, b)
	}
}

func (tg *target) dial() *fxtest.Client {
	tg.t.Helper()
	c, err := fxtest.Dial(ctx(tg.t), tg.url())
	if err != nil {
		tg.t.Fatal(err)
	}
	tg.t.Cleanup(func() { _ = c.Abort() })
	return c
}

// connect dials and authenticates with token; it returns the client and the
// raw data of `connected`.
func (tg *target) connect(token string) (*fxtest.Client, string, map[string]any) {
	tg.t.Helper()
	c := tg.dial()
	if err := c.Emit("authenticate", map[string]string{"token": token}); err != nil {
		tg.t.Fatal(err)
	}
	m, err := c.Expect(ctx(tg.t), "connected")
	if err != nil {
		tg.t.Fatalf("authenticate %q: %v", token, err)
	}
	var data map[string]any
	if err := json.Unmarshal(m.Data, &data); err != nil {
		tg.t.Fatal(err)
	}
	return c, data["id"].(string), data
}

// view is the contract's client view, decoded.
type view struct {
	ID        string          `json:"id"`
	UserID    *string         `json:"userId"`
	State     string          `json:"state"`
	Rooms     []string        `json:"rooms"`
	Encrypted bool            `json:"encrypted"`
	Metadata  json.RawMessage `json:"metadata"`
}

func (tg *target) client(id string) view {
	tg.t.Helper()
	code, b := tg.do(http.MethodGet, "/ws-api/clients/"+id, "")
	if code != 200 {
		tg.t.Fatalf("GET client %s: %d %s", id, code, b)
	}
	var v view
	if err := json.Unmarshal(b, &v); err != nil {
		tg.t.Fatal(err)
	}
	return v
}

// hooks returns the raw hook entries.
func (tg *target) hooks() []json.RawMessage {
	tg.t.Helper()
	code, b := tg.do(http.MethodGet, "/ws-api/hooks", "")
	if code != 200 {
		tg.t.Fatalf("hooks: %d %s", code, b)
	}
	var out []json.RawMessage
	if err := json.Unmarshal(b, &out); err != nil {
		tg.t.Fatal(err)
	}
	return out
}

// waitHook waits until the hook log holds exactly entry (byte for byte).
func (tg *target) waitHook(entry string) {
	tg.t.Helper()
	eventually(tg.t, "hook "+entry, func() bool {
		return slices.ContainsFunc(tg.hooks(), func(h json.RawMessage) bool { return string(h) == entry })
	})
}

func (tg *target) waitRooms(id string, want ...string) {
	tg.t.Helper()
	slices.Sort(want)
	eventually(tg.t, fmt.Sprintf("rooms of %s = %v", id, want), func() bool { return slices.Equal(tg.client(id).Rooms, want) })
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func expectData(t *testing.T, c *fxtest.Client, event, want string) {
	t.Helper()
	m, err := c.Expect(ctx(t), event)
	if err != nil {
		t.Fatalf("%s: %v", event, err)
	}
	if string(m.Data) != want {
		t.Fatalf("%s data %s, want %s", event, m.Data, want)
	}
}

func expectClose(t *testing.T, c *fxtest.Client, code ws.StatusCode, reason string) {
	t.Helper()
	got, gotReason, err := c.ExpectClose(ctx(t))
	if err != nil || got != code || gotReason != reason {
		t.Fatalf("close %d %q (%v), want %d %q", got, gotReason, err, code, reason)
	}
}

func expectError(t *testing.T, c *fxtest.Client, text string) {
	t.Helper()
	got, err := c.ExpectError(ctx(t))
	if err != nil || got != text {
		t.Fatalf("error event %q (%v), want %q", got, err, text)
	}
}

// TestContract checks every row of demo-contract.md that holds for any
// server configured with the defaults.
func TestContract(t *testing.T) {
	addr := os.Getenv("DEMO_ADDR")
	var p *process
	if addr == "" {
		p = startDemo(t)
		addr = p.addr
	}
	tg := newTarget(t, addr, "/ws")
	runContract(t, tg)
	if p == nil {
		return
	}
	t.Run("SIGTERM closes every client with 1001", func(t *testing.T) {
		authed, _, _ := tg.connect("valid-last")
		pending := tg.dial()
		waitState(t, tg, 2)
		signalShutdown(t, p, syscall.SIGTERM, authed, pending)
	})
}

// waitState waits until the server lists at least n clients.
func waitState(t *testing.T, tg *target, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d clients listed", n), func() bool {
		_, b := tg.do(http.MethodGet, "/ws-api/clients", "")
		var vs []view
		return json.Unmarshal(b, &vs) == nil && len(vs) >= n
	})
}

func runContract(t *testing.T, tg *target) {
	t.Run("healthz", func(t *testing.T) {
		if code, b := tg.do(http.MethodGet, "/healthz", ""); code != 200 || string(b) != `{"ok":true}` {
			t.Fatalf("%d %s", code, b)
		}
	})

	t.Run("authenticate conventions", func(t *testing.T) {
		_, id, data := tg.connect("valid-alice")
		if data["userId"] != "alice" || id == "" {
			t.Fatalf("connected %v", data)
		}
		if _, err := time.Parse(time.RFC3339Nano, data["time"].(string)); err != nil {
			t.Errorf("time %v: %v", data["time"], err)
		}
		tg.waitHook(`{"hook":"connected","clientId":"` + id + `","userId":"alice","metadata":{"role":"tester"}}`)

		// Anonymous: no userId at all, in connected and in the hook.
		_, anonID, anon := tg.connect("valid-")
		if _, has := anon["userId"]; has {
			t.Errorf("anonymous connected carries userId: %v", anon)
		}
		tg.waitHook(`{"hook":"connected","clientId":"` + anonID + `","metadata":{"role":"tester"}}`)
		if v := tg.client(anonID); v.UserID != nil || v.State != "authenticated" {
			t.Errorf("anonymous view %+v", v)
		}

		_, _, slow := tg.connect("slow-150-bob")
		if slow["userId"] != "bob" {
			t.Errorf("slow connected %v", slow)
		}

		thrower := tg.dial()
		if err := thrower.Emit("authenticate", map[string]string{"token": "throw"}); err != nil {
			t.Fatal(err)
		}
		expectError(t, thrower, "Authentication error")
		expectClose(t, thrower, 4003, "Authentication failed")

		for _, data := range []any{map[string]string{"token": "nope"}, map[string]int{"token": 5}, nil} {
			c := tg.dial()
			if err := c.Emit("authenticate", data); err != nil {
				t.Fatal(err)
			}
			expectError(t, c, "Authentication failed")
			expectClose(t, c, 4003, "Authentication failed")
		}
	})

	t.Run("hooks of a client that never authenticated", func(t *testing.T) {
		c := tg.dial()
		waitState(t, tg, 1)
		var id string
		eventually(t, "the pending client listed", func() bool {
			_, b := tg.do(http.MethodGet, "/ws-api/clients", "")
			var vs []view
			_ = json.Unmarshal(b, &vs)
			for _, v := range vs {
				if v.State == "unauthorized" {
					id = v.ID
					if v.UserID != nil || string(v.Metadata) != "null" || v.Encrypted || len(v.Rooms) != 0 || v.Rooms == nil {
						t.Errorf("unauthorized view %s", b)
					}
					return true
				}
			}
			return false
		})
		_ = c.Close()
		tg.waitHook(`{"hook":"disconnected","clientId":"` + id + `"}`)
	})

	t.Run("rooms rule", func(t *testing.T) {
		c, id, _ := tg.connect("valid-rooms")
		tg.waitRooms(id, id, "ws-default", "ws-notification")
		if err := c.Join("public-a", "private-b", "ws:internal", "public-c"); err != nil {
			t.Fatal(err)
		}
		tg.waitRooms(id, id, "public-a", "public-c", "ws-default", "ws-notification")
		if err := c.Leave("public-a"); err != nil {
			t.Fatal(err)
		}
		tg.waitRooms(id, id, "public-c", "ws-default", "ws-notification")
		v := tg.client(id)
		if v.UserID == nil || *v.UserID != "rooms" || v.State != "authenticated" || v.Encrypted || string(v.Metadata) != `{"role":"tester"}` {
			t.Errorf("view %+v %s", v, v.Metadata)
		}
	})

	t.Run("echo and throw", func(t *testing.T) {
		c, id, _ := tg.connect("valid-echo")
		if err := c.Emit("echo", map[string]any{"a": []int{1, 2}, "s": "<&>"}); err != nil {
			t.Fatal(err)
		}
		expectData(t, c, "echo", `{"a":[1,2],"s":"<&>"}`)
		if err := c.Emit("echo", nil); err != nil {
			t.Fatal(err)
		}
		expectData(t, c, "echo", `null`)
		if err := c.Emit("throw", 1); err != nil {
			t.Fatal(err)
		}
		if err := c.Emit("echo", "still open"); err != nil {
			t.Fatal(err)
		}
		expectData(t, c, "echo", `"still open"`)
		for _, ev := range []string{"echo", "throw"} {
			tg.waitHook(`{"hook":"message","clientId":"` + id + `","userId":"echo","event":"` + ev + `"}`)
		}
		// An anonymous client's message hook has no userId.
		a, aID, _ := tg.connect("valid-")
		if err := a.Emit("other", 1); err != nil {
			t.Fatal(err)
		}
		tg.waitHook(`{"hook":"message","clientId":"` + aID + `","event":"other"}`)
	})

	t.Run("REST sends", func(t *testing.T) {
		u1, u1ID, _ := tg.connect("valid-carol")
		u2, _, _ := tg.connect("valid-carol")
		other, otherID, _ := tg.connect("valid-dave")
		pending := tg.dial()
		if err := other.Join("public-room"); err != nil {
			t.Fatal(err)
		}
		tg.waitRooms(otherID, otherID, "public-room", "ws-default", "ws-notification")

		tg.okPost("/ws-api/broadcast", `{"event":"news","data":{"n":1}}`)
		for _, c := range []*fxtest.Client{u1, u2, other} {
			expectData(t, c, "news", `{"n":1}`)
		}
		tg.okPost("/ws-api/rooms/public-room/send", `{"event":"room","data":"r"}`)
		expectData(t, other, "room", `"r"`)
		tg.okPost("/ws-api/clients/"+u1ID+"/send", `{"event":"direct","data":[1]}`)
		expectData(t, u1, "direct", `[1]`)
		tg.okPost("/ws-api/users/carol/send", `{"event":"mine","data":true}`)
		expectData(t, u1, "mine", `true`)
		expectData(t, u2, "mine", `true`)
		// data null is sent; absent data sends nothing.
		tg.okPost("/ws-api/clients/"+otherID+"/send", `{"event":"nothing"}`)
		tg.okPost("/ws-api/clients/"+otherID+"/send", `{"event":"nil","data":null}`)
		expectData(t, other, "nil", `null`)
		if err := other.ExpectNothing("nothing", 200*time.Millisecond); err != nil {
			t.Error(err)
		}
		// Only the targets got them; unauthenticated clients get nothing.
		for _, c := range []*fxtest.Client{u2, other} {
			if err := c.ExpectNothing("direct", 100*time.Millisecond); err != nil {
				t.Error(err)
			}
		}
		if err := u1.ExpectNothing("room", 100*time.Millisecond); err != nil {
			t.Error(err)
		}
		if got := pending.Messages(); len(got) != 0 {
			t.Errorf("an unauthenticated client received %v", got)
		}
	})

	t.Run("server-side join and leave", func(t *testing.T) {
		c, id, _ := tg.connect("valid-erin")
		tg.okPost("/ws-api/clients/"+id+"/rooms/private-x", "")
		tg.waitRooms(id, id, "private-x", "ws-default", "ws-notification")
		tg.okPost("/ws-api/rooms/private-x/send", `{"event":"x","data":1}`)
		expectData(t, c, "x", `1`)
		if code, b := tg.do(http.MethodDelete, "/ws-api/clients/"+id+"/rooms/private-x", ""); code != 200 || string(b) != `{"ok":true}` {
			t.Fatalf("DELETE: %d %s", code, b)
		}
		tg.waitRooms(id, id, "ws-default", "ws-notification")
	})

	t.Run("client list and unknown routes", func(t *testing.T) {
		_, id, _ := tg.connect("valid-frank")
		code, b := tg.do(http.MethodGet, "/ws-api/clients", "")
		var vs []view
		if code != 200 || json.Unmarshal(b, &vs) != nil || !slices.ContainsFunc(vs, func(v view) bool { return v.ID == id }) {
			t.Fatalf("clients: %d %s", code, b)
		}
		if code, b := tg.do(http.MethodGet, "/ws-api/clients/no-such-client", ""); code != 404 || string(b) != `{"error":"not found"}` {
			t.Errorf("unknown client: %d %s", code, b)
		}
		if code, b := tg.do(http.MethodGet, "/ws-api/nothing", ""); code != 404 || string(b) != `{"error":"no route"}` {
			t.Errorf("unknown API route: %d %s", code, b)
		}
		if code, _ := tg.do(http.MethodGet, "/elsewhere", ""); code != 404 {
			t.Errorf("unknown path: %d", code)
		}
	})
}

// TestEnvironment: the configuration variables of the contract.
func TestEnvironment(t *testing.T) {
	p := startDemo(t,
		"WS_PATH=/realtime", "DEFAULT_ROOMS=lobby,news", "AUTH_TIMEOUT_MS=300",
		"MAX_PAYLOAD_LENGTH=1024", "HEARTBEAT_INTERVAL_MS=100", "HEARTBEAT_TIMEOUT_MS=400")
	tg := newTarget(t, p.addr, "/realtime")

	c, id, _ := tg.connect("valid-g")
	tg.waitRooms(id, id, "lobby", "news")

	idle := tg.dial()
	expectClose(t, idle, 4001, "Authentication timeout")

	if err := c.SendText(`{"event":"big","data":"` + strings.Repeat("x", 2000) + `"}`); err != nil {
		t.Fatal(err)
	}
	expectClose(t, c, ws.StatusMessageTooBig, protocol.ReasonMessageTooBig)

	silent, _, _ := tg.connect("valid-h")
	expectClose(t, silent, 4002, "Heartbeat timeout")

	// A bad value fails fast with a message naming it.
	bad := exec.Command(demoBinary)
	bad.Env = append(os.Environ(), "AUTH_TIMEOUT_MS=soon")
	out, err := bad.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "AUTH_TIMEOUT_MS") {
		t.Errorf("AUTH_TIMEOUT_MS=soon: %v %s", err, out)
	}
}

// TestEncryption: REQUIRE_ENCRYPTION=1 runs the Ignis ECDH scheme.
func TestEncryption(t *testing.T) {
	p := startDemo(t, "REQUIRE_ENCRYPTION=1")
	tg := newTarget(t, p.addr, "/ws")
	c, err := fxtest.DialEncrypted(ctx(t), tg.url())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Abort() })
	cd, err := c.Authenticate(ctx(t), map[string]string{"token": "valid-enc"})
	if err != nil {
		t.Fatal(err)
	}
	if v := tg.client(cd.ID); !v.Encrypted {
		t.Errorf("view %+v: not encrypted", v)
	}
	tg.okPost("/ws-api/clients/"+cd.ID+"/send", `{"event":"secret","data":{"k":"v"}}`)
	m, err := c.ExpectDecrypted(ctx(t), "secret")
	if err != nil || string(m.Data) != `{"k":"v"}` {
		t.Fatalf("secret: %v %s", err, m.Data)
	}
	if got := c.Messages(); slices.ContainsFunc(got, func(m protocol.Message) bool { return m.Event == "secret" }) {
		t.Error("a message reached an encrypted client in clear")
	}
	// Echo, sent encrypted both ways.
	if err := c.EmitEncrypted("echo", "hi"); err != nil {
		t.Fatal(err)
	}
	if m, err := c.ExpectDecrypted(ctx(t), "echo"); err != nil || string(m.Data) != `"hi"` {
		t.Fatalf("echo: %v %s", err, m.Data)
	}

	// No public key, or a bad one: 4004.
	for _, data := range []map[string]string{{"token": "valid-x"}, {"token": "valid-x", "publicKey": "AAAA"}} {
		plain := tg.dial()
		if err := plain.Emit("authenticate", data); err != nil {
			t.Fatal(err)
		}
		expectError(t, plain, "Encryption handshake failed")
		expectClose(t, plain, 4004, "Encryption required")
	}
}

// TestRedis: two demo processes on one Redis are one deployment.
func TestRedis(t *testing.T) {
	r := redistest.Start(t)
	a := startDemo(t, "REDIS_URL="+r.URL())
	b := startDemo(t, "REDIS_URL="+r.URL())
	ta, tb := newTarget(t, a.addr, "/ws"), newTarget(t, b.addr, "/ws")
	ca, _, _ := ta.connect("valid-ann")
	cb, cbID, _ := tb.connect("valid-ben")
	if err := cb.Join("public-shared"); err != nil {
		t.Fatal(err)
	}
	tb.waitRooms(cbID, cbID, "public-shared", "ws-default", "ws-notification")

	ta.okPost("/ws-api/broadcast", `{"event":"all","data":1}`)
	expectData(t, ca, "all", `1`)
	expectData(t, cb, "all", `1`)
	ta.okPost("/ws-api/clients/"+cbID+"/send", `{"event":"direct","data":2}`)
	expectData(t, cb, "direct", `2`)
	ta.okPost("/ws-api/rooms/public-shared/send", `{"event":"room","data":3}`)
	expectData(t, cb, "room", `3`)
	// Users reach every instance (a deliberate difference: the original is local).
	ta.okPost("/ws-api/users/ben/send", `{"event":"user","data":4}`)
	expectData(t, cb, "user", `4`)

	// With Redis gone, a send reaches this instance's clients and says
	// that the others were not reached (it answered ok, and a mixed-fleet
	// trial counted what was so lost as delivered).
	if os.Getenv("DEMO_ADDR") == "" {
		r.Kill()
		code, body := ta.do(http.MethodPost, "/ws-api/broadcast", `{"event":"outage","data":5}`)
		if code != http.StatusServiceUnavailable || !strings.Contains(string(body), `"deliveredLocally":true`) {
			t.Errorf("send with Redis gone: %d %s, want 503 saying it was delivered locally", code, body)
		}
		expectData(t, ca, "outage", `5`)
		r.Restart()
	}

	// An unreachable Redis fails the start.
	bad := exec.Command(demoBinary)
	bad.Env = append(os.Environ(), "HOST=127.0.0.1", "PORT=0", "REDIS_URL=redis://127.0.0.1:1")
	out, err := bad.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "PING") {
		t.Errorf("unreachable Redis: %v\n%s", err, out)
	}
}

// SIGINT shuts the demo down as SIGTERM does (demo-contract.md: "SIGTERM or
// SIGINT"): every client closed 1001, then a clean exit. (From a spec
// audit: only SIGTERM was tested.)
func TestSIGINT(t *testing.T) {
	if os.Getenv("DEMO_ADDR") != "" {
		t.Skip("needs a demo of its own")
	}
	p := startDemo(t)
	tg := newTarget(t, p.addr, "/ws")
	c, _, _ := tg.connect("valid-interrupted")
	signalShutdown(t, p, syscall.SIGINT, c)
}

// signalShutdown sends sig to the demo, expects every one of clients to be
// closed 1001 "Server shutting down", and the demo to exit cleanly.
func signalShutdown(t *testing.T, p *process, sig syscall.Signal, clients ...*fxtest.Client) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		expectClose(t, c, ws.StatusGoingAway, "Server shutting down")
	}
	select {
	case <-p.exited:
		if p.err != nil {
			t.Fatalf("exit: %v", p.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the demo did not exit after %v", sig)
	}
}

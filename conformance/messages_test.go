package conformance

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fxws/websocket/protocol"
	"github.com/gobwas/ws"
)

func TestEcho(t *testing.T) {
	t.Parallel()
	c, _ := authed(t, "valid-"+uniq("echo-"))
	cases := []struct{ sent, want string }{
		{`{"x":1,"y":[true,null,"s"]}`, `{"x":1,"y":[true,null,"s"]}`},
		{`"text"`, `"text"`},
		{`0`, `0`},
		{`false`, `false`},
		{`[]`, `[]`},
		{`null`, `null`},
	}
	for _, tc := range cases {
		sendText(t, c, `{"event":"echo","data":`+tc.sent+`}`)
		jsonEqual(t, expect(t, c, "echo"), tc.want)
	}
	// No data: the handler echoes message.data ?? null.
	sendText(t, c, `{"event":"echo"}`)
	if d := expect(t, c, "echo"); string(d) != "null" {
		t.Fatalf("echo without data: data %s, want null", d)
	}
}

// TestEchoBytes: the echoed data is the original's JSON.stringify of the
// parsed data, byte for byte.
func TestEchoBytes(t *testing.T) {
	t.Parallel()
	c, _ := authed(t, "valid-"+uniq("bytes-"))
	cases := []struct{ sent, want string }{
		{`{"b": 1, "a": 2}`, `{"b":1,"a":2}`},
		{`{"n":1.0,"e":1e3,"f":-0.5e-7,"z":-0}`, `{"n":1,"e":1000,"f":-5e-8,"z":0}`},
		{`{"big":12345678901234567890}`, `{"big":12345678901234567000}`},
		{`{"html":"<a&b>","u":"\u00e9\u2028"}`, `{"html":"<a&b>","u":"é` + "\u2028" + `"}`},
		{`{"esc":"\/\"\\\n\t\u0001"}`, `{"esc":"/\"\\\n\t\u0001"}`},
		{`{"dup":1,"dup":2}`, `{"dup":2}`},
		{`{"b":1,"2":2,"a":3,"1":4}`, `{"1":4,"2":2,"b":1,"a":3}`}, // integer keys first, as JS objects order them
		{`{"s":"\ud800x"}`, `{"s":"\ud800x"}`},                     // a lone surrogate stays escaped
		{`{"inf":1e400,"tiny":1e-400}`, `{"inf":null,"tiny":0}`},
		{`[1e21,1e-7,123456789012345680000,0.1]`, `[1e+21,1e-7,123456789012345680000,0.1]`},
	}
	for _, tc := range cases {
		sendText(t, c, `{"event":"echo","data":`+tc.sent+`}`)
		if got := string(expect(t, c, "echo")); got != tc.want {
			t.Errorf("echo of %s = %s, want %s", tc.sent, got, tc.want)
		}
	}
}

// TestDuplicateKeys: the last of duplicate members wins, as in JSON.parse.
func TestDuplicateKeys(t *testing.T) {
	t.Parallel()
	c, cd := authed(t, "valid-"+uniq("dupkeys-"))
	sendText(t, c, `{"event":"throw","event":"echo","data":1,"data":{"last":true}}`)
	jsonEqual(t, expect(t, c, "echo"), `{"last":true}`)
	expectOpen(t, c)
	for _, h := range hooksOf(t, cd.ID) {
		if strings.Contains(string(h.raw), `"event":"throw"`) {
			t.Fatalf("first duplicate used: %s", h.raw)
		}
	}
	d := dial(t)
	sendText(t, d, `{"event":"authenticate","data":{"token":"nope","token":"valid-dup"}}`)
	connectedShape(t, expect(t, d, "connected"), "dup")
}

func TestMessageHandlerThrowKeepsConnection(t *testing.T) {
	t.Parallel()
	c, cd := authed(t, "valid-"+uniq("thrower-"))
	emit(t, c, "throw", map[string]int{"a": 1})
	expectOpen(t, c)
	noMessages(t, c)
	hs := hooksOf(t, cd.ID)
	if !slices.ContainsFunc(hs, func(h hook) bool { return strings.Contains(string(h.raw), `"event":"throw"`) }) {
		t.Fatalf("throw not recorded: %v", hookKinds(hs))
	}
}

func TestInvalidJSON(t *testing.T) {
	t.Parallel()
	c, _ := authed(t, "valid-"+uniq("garbage-"))
	for _, s := range []string{"not json", "{", `{"event":"echo",}`, "", "{'event':'echo'}"} {
		sendText(t, c, s)
		expectError(t, c, "Invalid message format")
	}
	expectOpen(t, c)
}

// TestNoEventIgnored: valid JSON without a usable event is dropped silently.
func TestNoEventIgnored(t *testing.T) {
	t.Parallel()
	c, cd := authed(t, "valid-"+uniq("noevent-"))
	for _, s := range []string{
		`{}`, `{"data":1}`, `{"event":""}`, `{"event":null}`, `{"event":0}`, `{"event":false}`,
		`123`, `"echo"`, `[]`, `[{"event":"echo"}]`, `true`,
	} {
		sendText(t, c, s)
	}
	expectOpen(t, c)
	noMessages(t, c)
	for _, h := range hooksOf(t, cd.ID) {
		if h.Hook == "message" && !strings.Contains(string(h.raw), `"event":"echo"`) {
			t.Fatalf("recorded: %s", h.raw)
		}
	}
}

// TestNullMessage: the original's handler throws on `null` (null.event), an
// uncaught exception that answers nothing. Ours answers it like any other
// message that is not a JSON object with an event it can read: the error
// event "Invalid message format" (our hardening: wrong types anywhere get
// the spec's error); the connection stays in both.
func TestNullMessage(t *testing.T) {
	t.Parallel()
	c, _ := authed(t, "valid-"+uniq("null-"))
	sendText(t, c, `null`)
	sendText(t, c, ` null `)
	expectOpen(t, c)
	if cfg.impl == implIgnis {
		noMessages(t, c)
		return
	}
	for i := 0; i < 2; i++ {
		ctx := ctxWait(t)
		text, err := c.ExpectError(ctx)
		if err != nil || text != protocol.ErrTextInvalidFormat {
			t.Fatalf("null message %d: error %q, %v", i, text, err)
		}
	}
}

// TestServerEventsFromClient: deliberate difference, connected/disconnect/
// error sent by a client (and non-string events) are ignored.
func TestServerEventsFromClient(t *testing.T) {
	t.Parallel()
	deliberate(t, "passes connected/disconnect/error and non-string events to the message handler")
	c, cd := authed(t, "valid-"+uniq("impostor-"))
	for _, s := range []string{
		`{"event":"connected","data":{}}`, `{"event":"disconnect"}`, `{"event":"error","data":{"message":"x"}}`,
		`{"event":5}`, `{"event":{"a":1}}`, `{"event":["echo"]}`, `{"event":true}`,
	} {
		sendText(t, c, s)
	}
	expectOpen(t, c)
	noMessages(t, c)
	for _, h := range hooksOf(t, cd.ID) {
		if h.Hook == "message" && !strings.Contains(string(h.raw), `"event":"echo"`) {
			t.Fatalf("passed to the message handler: %s", h.raw)
		}
	}
}

func TestHeartbeatEvent(t *testing.T) {
	t.Parallel()
	c, cd := authed(t, "valid-"+uniq("hb-"))
	emit(t, c, "heartbeat", nil)
	emit(t, c, "heartbeat", map[string]int{"t": 1})
	expectOpen(t, c)
	noMessages(t, c)
	for _, h := range hooksOf(t, cd.ID) {
		if strings.Contains(string(h.raw), `"event":"heartbeat"`) {
			t.Fatalf("heartbeat passed to the message handler: %s", h.raw)
		}
	}
}

func TestHooksOrderAndShape(t *testing.T) {
	t.Parallel()
	for _, user := range []string{uniq("hooked-"), ""} {
		c, cd := authed(t, "valid-"+user)
		ev := uniq("app-")
		emit(t, c, ev, map[string]int{"n": 1})
		expectOpen(t, c) // records an echo too
		_ = c.Close()
		eventually(t, "disconnected hook", func() bool {
			k := hookKinds(hooksOf(t, cd.ID))
			return len(k) > 0 && k[len(k)-1] == "disconnected"
		})
		hs := hooksOf(t, cd.ID)
		if k := hookKinds(hs); !slices.Equal(k, []string{"connected", "message", "message", "disconnected"}) {
			t.Fatalf("hooks = %v", k)
		}
		uid := ""
		if user != "" {
			uid = `,"userId":"` + user + `"`
		}
		jsonEqual(t, hs[0].raw, `{"hook":"connected","clientId":"`+cd.ID+`"`+uid+`,"metadata":{"role":"tester"}}`)
		jsonEqual(t, hs[1].raw, `{"hook":"message","clientId":"`+cd.ID+`"`+uid+`,"event":"`+ev+`"}`)
		jsonEqual(t, hs[2].raw, `{"hook":"message","clientId":"`+cd.ID+`"`+uid+`,"event":"echo"}`)
		jsonEqual(t, hs[3].raw, `{"hook":"disconnected","clientId":"`+cd.ID+`"`+uid+`}`)
		eventually(t, "client removed", func() bool { return getView(t, cd.ID) == nil })
	}
}

func TestClientsList(t *testing.T) {
	t.Parallel()
	_, a := authed(t, "valid-"+uniq("list-"))
	_, b := authed(t, "valid-")
	vs := listViews(t)
	found := 0
	for _, v := range vs {
		if v.ID == a.ID || v.ID == b.ID {
			found++
			wantKeys(t, v.raw, "id", "userId", "state", "rooms", "encrypted", "metadata")
			one := getView(t, v.ID)
			jsonEqual(t, one.raw, string(v.raw))
		}
	}
	if found != 2 {
		t.Fatalf("found %d of 2 clients in the list", found)
	}
}

// TestHeartbeatTimeout: an authenticated client that sends nothing is
// closed 4002 after HEARTBEAT_TIMEOUT_MS (sweeps every
// HEARTBEAT_INTERVAL_MS); one that keeps sending frames stays.
func TestHeartbeatTimeout(t *testing.T) {
	t.Parallel()
	idle, _ := authed(t, "valid-"+uniq("idle-"))
	busy, _ := authed(t, "valid-"+uniq("busy-"))
	chatty, _ := authed(t, "valid-"+uniq("chatty-"))
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(cfg.hbTimeout / 5)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
				_ = busy.Emit("heartbeat", nil)
				// Any frame counts as activity, even one that is not JSON.
				_ = chatty.SendText("not json")
			}
		}
	}()
	expectClose(t, idle, 4002, "Heartbeat timeout", cfg.hbTimeout+cfg.hbInterval+waitFor)
	// The others outlived the idle one's timeout by a sweep or two.
	time.Sleep(2 * cfg.hbInterval)
	close(stop)
	<-done
	expectOpen(t, busy)
	expectOpen(t, chatty)
	expectClose(t, busy, 4002, "Heartbeat timeout", cfg.hbTimeout+cfg.hbInterval+waitFor)
}

func TestMaxPayload(t *testing.T) {
	t.Parallel()
	frame := func(n int) string {
		head := `{"event":"echo","data":"`
		return head + strings.Repeat("a", n-len(head)-2) + `"}`
	}
	c, _ := authed(t, "valid-"+uniq("big-"))
	sendText(t, c, frame(cfg.maxPayload))
	if d := expect(t, c, "echo"); len(d) != cfg.maxPayload-len(`{"event":"echo","data":}`) {
		t.Fatalf("echo of a max-size message has %d bytes of data", len(d))
	}
	sendText(t, c, frame(cfg.maxPayload+1))
	code, reason, err := c.ExpectClose(ctxWait(t))
	if err != nil {
		t.Fatal(err)
	}
	if code != ws.StatusMessageTooBig {
		t.Fatalf("close %d %q, want 1009", code, reason)
	}
	if reason != "Received too big message" {
		t.Errorf("close reason %q, want the original's %q (code 1009 matches)", reason, "Received too big message")
	}
}

func TestMaxPayloadUnauthenticated(t *testing.T) {
	t.Parallel()
	c := dial(t)
	sendText(t, c, `{"event":"authenticate","data":{"token":"`+strings.Repeat("a", cfg.maxPayload)+`"}}`)
	code, reason, err := c.ExpectClose(ctxWait(t))
	if err != nil || code != ws.StatusMessageTooBig {
		t.Fatalf("close %d %q %v, want 1009", code, reason, err)
	}
}

func TestMaxPayloadFragmented(t *testing.T) {
	t.Parallel()
	c, _ := authed(t, "valid-"+uniq("frag-"))
	half := cfg.maxPayload/2 + 16
	head := `{"event":"echo","data":"`
	first := head + strings.Repeat("a", half-len(head))
	second := strings.Repeat("b", half) + `"}`
	if err := c.WriteFrame(ws.NewFrame(ws.OpText, false, []byte(first))); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteFrame(ws.NewFrame(ws.OpContinuation, true, []byte(second))); err != nil {
		t.Fatal(err)
	}
	code, reason, err := c.ExpectClose(ctxWait(t))
	if err != nil {
		t.Fatal(err)
	}
	if code != ws.StatusMessageTooBig {
		t.Fatalf("close %d %q, want 1009", code, reason)
	}
}

func TestFragmentedMessage(t *testing.T) {
	t.Parallel()
	c, _ := authed(t, "valid-"+uniq("frag-ok-"))
	parts := []string{`{"event":"ec`, `ho","data"`, `:{"k":"v"}}`}
	for i, p := range parts {
		op := ws.OpContinuation
		if i == 0 {
			op = ws.OpText
		}
		if err := c.WriteFrame(ws.NewFrame(op, i == len(parts)-1, []byte(p))); err != nil {
			t.Fatal(err)
		}
	}
	jsonEqual(t, expect(t, c, "echo"), `{"k":"v"}`)
}

// TestBinaryFrames: the original decodes a binary message as UTF-8 text
// and handles it like a text message.
func TestBinaryFrames(t *testing.T) {
	t.Parallel()
	c := dial(t)
	bin := func(s string) {
		if err := c.WriteFrame(ws.NewBinaryFrame([]byte(s))); err != nil {
			t.Fatal(err)
		}
	}
	bin(`{"event":"authenticate","data":{"token":"valid-bin"}}`)
	cd := expect(t, c, "connected")
	connectedShape(t, cd, "bin")
	bin(`{"event":"echo","data":{"via":"binary"}}`)
	jsonEqual(t, expect(t, c, "echo"), `{"via":"binary"}`)
	bin(`not json`)
	expectError(t, c, "Invalid message format")
	expectOpen(t, c)
}

// TestShutdown: SIGTERM closes every client (authenticated or not) with
// 1001 "Server shutting down". Runs on a fresh instance.
func TestShutdown(t *testing.T) {
	if cfg.serverCmd == "" {
		t.Skip("needs CONFORMANCE_SERVER_CMD (or the suite starting the demo itself)")
	}
	t.Parallel()
	p, err := startInstance(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.kill() })
	u := "ws" + strings.TrimPrefix(p.base, "http") + cfg.wsPath
	a := dialTo(t, u)
	if _, err := a.Authenticate(ctxWait(t), map[string]string{"token": "valid-bye"}); err != nil {
		t.Fatal(err)
	}
	b := dialTo(t, u)
	// Make sure b's upgrade is complete (it is listed) before the signal.
	eventually(t, "both clients listed", func() bool {
		resp, err := httpClient.Get(p.base + "/ws-api/clients")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var vs []json.RawMessage
		return json.NewDecoder(resp.Body).Decode(&vs) == nil && len(vs) == 2
	})
	if err := p.signal(sigterm); err != nil {
		t.Fatal(err)
	}
	for _, c := range []interface {
		ExpectClose(context.Context) (ws.StatusCode, string, error)
	}{a, b} {
		code, reason, err := c.ExpectClose(ctxWait(t))
		if err != nil || code != 1001 || reason != "Server shutting down" {
			t.Fatalf("close = %d %q %v, want 1001 \"Server shutting down\"", code, reason, err)
		}
	}
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		t.Fatalf("no exit after SIGTERM; output:\n%s", p.output())
	}
	if _, err := httpClient.Get(p.base + "/healthz"); err == nil {
		t.Fatal("still serving after exit")
	}
}

// TestConnectedHookBeforeMessages: the original calls the connected hook
// synchronously right after sending `connected`, so a message the client
// sends on receiving `connected` is always recorded after it. Many clients
// at once, to give a race a chance.
func TestConnectedHookBeforeMessages(t *testing.T) {
	t.Parallel()
	const n = 40
	ids := make(chan string, n)
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*waitFor)
			defer cancel()
			c, err := dialQuiet(cfg.wsURL())
			if err != nil {
				errs <- err
				return
			}
			defer c.Abort()
			if err := c.Emit("authenticate", map[string]string{"token": "valid-" + uniq("race-")}); err != nil {
				errs <- err
				return
			}
			m, err := c.Expect(ctx, "connected")
			if err != nil {
				errs <- err
				return
			}
			if err := c.Emit("echo", 1); err != nil {
				errs <- err
				return
			}
			if _, err := c.Expect(ctx, "echo"); err != nil {
				errs <- err
				return
			}
			var cd struct{ ID string }
			_ = json.Unmarshal(m.Data, &cd)
			ids <- cd.ID
		}()
	}
	bad := 0
	for i := 0; i < n; i++ {
		select {
		case err := <-errs:
			t.Fatal(err)
		case id := <-ids:
			if k := hookKinds(hooksOf(t, id)); len(k) < 2 || k[0] != "connected" {
				bad++
				t.Errorf("client %s: hooks %v, want connected first", id, k)
			}
		}
	}
	if bad > 0 {
		t.Logf("%d of %d clients had a message recorded before connected", bad, n)
	}
}

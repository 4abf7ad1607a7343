package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/protocol"
	"github.com/gobwas/ws"
)

// Waits: generous for what must happen (the machine is busy), short for
// what must not.
const (
	waitFor   = 5 * time.Second
	quietSpan = 300 * time.Millisecond
)

// deliberate marks a row of spec.md's "Deliberate differences" table: the
// test asserts the spec's behaviour for our server only.
func deliberate(t *testing.T, original string) {
	t.Helper()
	if cfg.impl == implIgnis {
		t.Skipf("deliberate difference (spec.md); the original %s: not asserted for it", original)
	}
}

func ctxWait(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	t.Cleanup(cancel)
	return ctx
}

// uniq is a fresh name with prefix, so parallel tests never share events,
// users or rooms.
func uniq(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// dial connects a client that is closed when the test ends.
func dial(t *testing.T) *fxtest.Client {
	t.Helper()
	return dialTo(t, cfg.wsURL())
}

func dialTo(t *testing.T, u string) *fxtest.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, err := fxtest.Dial(ctx, u)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Abort() })
	return c
}

// authed dials and authenticates with token; it returns the client and
// the connected data.
func authed(t *testing.T, token string) (*fxtest.Client, protocol.ConnectedData) {
	t.Helper()
	c := dial(t)
	cd, err := c.Authenticate(ctxWait(t), map[string]any{"token": token})
	if err != nil {
		t.Fatalf("authenticate %q: %v", token, err)
	}
	return c, cd
}

// emit sends an event or fails the test.
func emit(t *testing.T, c *fxtest.Client, event string, data any) {
	t.Helper()
	if err := c.Emit(event, data); err != nil {
		t.Fatalf("emit %s: %v", event, err)
	}
}

func sendText(t *testing.T, c *fxtest.Client, s string) {
	t.Helper()
	if err := c.SendText(s); err != nil {
		t.Fatalf("send %q: %v", s, err)
	}
}

// expect waits for event and returns its raw data.
func expect(t *testing.T, c *fxtest.Client, event string) json.RawMessage {
	t.Helper()
	m, err := c.Expect(ctxWait(t), event)
	if err != nil {
		t.Fatalf("expect %q: %v", event, err)
	}
	return m.Data
}

func expectError(t *testing.T, c *fxtest.Client, text string) {
	t.Helper()
	got, err := c.ExpectError(ctxWait(t))
	if err != nil {
		t.Fatalf("expect error %q: %v", text, err)
	}
	if got != text {
		t.Fatalf("error message = %q, want %q", got, text)
	}
}

func expectClose(t *testing.T, c *fxtest.Client, code ws.StatusCode, reason string, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	got, why, err := c.ExpectClose(ctx)
	if err != nil {
		t.Fatalf("expect close %d %q: %v", code, reason, err)
	}
	if got != code || why != reason {
		t.Fatalf("close = %d %q, want %d %q", got, why, code, reason)
	}
}

func expectNothing(t *testing.T, c *fxtest.Client, event string) {
	t.Helper()
	if err := c.ExpectNothing(event, quietSpan); err != nil {
		t.Fatalf("expect no %q: %v", event, err)
	}
}

// expectOpen checks that c is still usable: an echo round trip succeeds.
// It is also a barrier: the server has handled everything c sent before.
func expectOpen(t *testing.T, c *fxtest.Client) {
	t.Helper()
	tag := uniq("barrier-")
	emit(t, c, "echo", map[string]string{"barrier": tag})
	ctx := ctxWait(t)
	for {
		m, err := c.Expect(ctx, "echo")
		if err != nil {
			t.Fatalf("connection not usable (echo barrier): %v", err)
		}
		var d map[string]string
		if json.Unmarshal(m.Data, &d) == nil && d["barrier"] == tag {
			return
		}
	}
}

// expectOpenUnauth checks that an unauthenticated c is still open: an
// application event gets "Not authenticated".
func expectOpenUnauth(t *testing.T, c *fxtest.Client) {
	t.Helper()
	emit(t, c, uniq("probe-"), nil)
	expectError(t, c, "Not authenticated")
}

// otherTest matches the unique event names of the tests: parallel tests
// broadcast and send to default rooms, so those may reach anyone.
var otherTest = regexp.MustCompile(`-[0-9a-f]{12}$`)

// noMessages fails if any message other than ignore (or another test's
// event) arrives within the quiet span.
func noMessages(t *testing.T, c *fxtest.Client, ignore ...string) {
	t.Helper()
	time.Sleep(quietSpan)
	for _, m := range c.Messages() {
		if !slices.Contains(ignore, m.Event) && !otherTest.MatchString(m.Event) {
			t.Fatalf("unexpected message %q: %s", m.Event, m.Data)
		}
	}
}

// jsonEqual compares two JSON texts by value.
func jsonEqual(t *testing.T, got json.RawMessage, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got invalid JSON %q: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want invalid JSON %q: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("got %s, want %s", got, want)
	}
}

// keys of a JSON object, sorted.
func keys(t *testing.T, raw json.RawMessage) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("not a JSON object: %s", raw)
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func wantKeys(t *testing.T, raw json.RawMessage, want ...string) {
	t.Helper()
	sort.Strings(want)
	if got := keys(t, raw); !slices.Equal(got, want) {
		t.Fatalf("keys of %s = %v, want %v", raw, got, want)
	}
}

// ---- REST ----

type response struct {
	status int
	ctype  string
	body   []byte
}

func do(t *testing.T, method, path, body string) response {
	t.Helper()
	return doAt(t, cfg.base, method, path, body)
}

func doAt(t *testing.T, base, method, path, body string) response {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, r)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	ctype := resp.Header.Get("Content-Type")
	// demo-contract.md: every answer of the REST control API is JSON.
	if strings.HasPrefix(path, "/ws-api") && !strings.HasPrefix(ctype, "application/json") {
		t.Fatalf("%s %s: Content-Type %q, want application/json", method, path, ctype)
	}
	return response{status: resp.StatusCode, ctype: ctype, body: b}
}

// post sends a JSON body and expects 200 {"ok":true}.
func post(t *testing.T, path, body string) {
	t.Helper()
	r := do(t, http.MethodPost, path, body)
	if r.status != http.StatusOK {
		t.Fatalf("POST %s %s: status %d %s", path, body, r.status, r.body)
	}
	jsonEqual(t, r.body, `{"ok":true}`)
}

func seg(s string) string { return url.PathEscape(s) }

// sendBody is a REST send body with event and data (data is raw JSON).
func sendBody(event, data string) string {
	e, _ := json.Marshal(event)
	return fmt.Sprintf(`{"event":%s,"data":%s}`, e, data)
}

// view is a client view of the REST API, decoded loosely so that key
// presence and null can be checked.
type view struct {
	raw json.RawMessage
	ID  string `json:"id"`
	// UserID is nil for JSON null.
	UserID    *string         `json:"userId"`
	State     string          `json:"state"`
	Rooms     []string        `json:"rooms"`
	Encrypted bool            `json:"encrypted"`
	Metadata  json.RawMessage `json:"metadata"`
}

// getView returns the client view of id, or nil on 404.
func getView(t *testing.T, id string) *view {
	t.Helper()
	return getViewAt(t, cfg.base, id)
}

// getViewAt is getView on another instance.
func getViewAt(t *testing.T, base, id string) *view {
	t.Helper()
	r := doAt(t, base, http.MethodGet, "/ws-api/clients/"+seg(id), "")
	if r.status == http.StatusNotFound {
		return nil
	}
	if r.status != http.StatusOK {
		t.Fatalf("GET client %s: status %d %s", id, r.status, r.body)
	}
	v := &view{raw: r.body}
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("GET client %s: %v: %s", id, err, r.body)
	}
	return v
}

func listViews(t *testing.T) []view {
	t.Helper()
	r := do(t, http.MethodGet, "/ws-api/clients", "")
	if r.status != http.StatusOK {
		t.Fatalf("GET clients: status %d %s", r.status, r.body)
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(r.body, &raws); err != nil {
		t.Fatalf("GET clients: %v: %s", err, r.body)
	}
	out := make([]view, len(raws))
	for i, raw := range raws {
		out[i].raw = raw
		if err := json.Unmarshal(raw, &out[i]); err != nil {
			t.Fatalf("GET clients: %v: %s", err, raw)
		}
	}
	return out
}

// eventually polls cond until it holds or waitFor passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", waitFor, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// roomsOf returns the rooms of client id (fails if unknown).
func roomsOf(t *testing.T, id string) []string {
	t.Helper()
	v := getView(t, id)
	if v == nil {
		t.Fatalf("client %s unknown", id)
	}
	return v.Rooms
}

// wantRooms checks the client's rooms (the view lists them sorted).
func wantRooms(t *testing.T, id string, want ...string) {
	t.Helper()
	want = slices.Clone(want)
	sort.Strings(want)
	if got := roomsOf(t, id); !slices.Equal(got, want) {
		t.Fatalf("rooms of %s = %q, want %q", id, got, want)
	}
}

// defaultRooms is what a fresh client with id is in.
func defaultRooms(id string) []string { return []string{id, "ws-default", "ws-notification"} }

// hook is one entry of /ws-api/hooks.
type hook struct {
	raw      json.RawMessage
	Hook     string `json:"hook"`
	ClientID string `json:"clientId"`
}

// hooksOf returns the recorded hook calls of clientID, oldest first.
func hooksOf(t *testing.T, clientID string) []hook {
	t.Helper()
	r := do(t, http.MethodGet, "/ws-api/hooks", "")
	if r.status != http.StatusOK {
		t.Fatalf("GET hooks: status %d %s", r.status, r.body)
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(r.body, &raws); err != nil {
		t.Fatalf("GET hooks: %v", err)
	}
	var out []hook
	for _, raw := range raws {
		h := hook{raw: raw}
		if err := json.Unmarshal(raw, &h); err != nil {
			t.Fatalf("GET hooks entry: %v: %s", err, raw)
		}
		if h.ClientID == clientID {
			out = append(out, h)
		}
	}
	return out
}

// hookKinds lists the hook names, e.g. [connected message disconnected].
func hookKinds(hs []hook) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.Hook
	}
	return out
}

// dialUnauth dials a client and finds its id through the REST list (the
// protocol tells an unauthenticated client nothing). Only for serial tests:
// it takes the one new unauthorized client.
func dialUnauth(t *testing.T) (*fxtest.Client, string) {
	t.Helper()
	before := map[string]bool{}
	for _, v := range listViews(t) {
		before[v.ID] = true
	}
	c := dial(t)
	var id string
	eventually(t, "the new client is listed", func() bool {
		var fresh []string
		for _, v := range listViews(t) {
			if !before[v.ID] && v.State == "unauthorized" {
				fresh = append(fresh, v.ID)
			}
		}
		if len(fresh) == 1 {
			id = fresh[0]
			return true
		}
		return false
	})
	return c, id
}

// dialQuiet dials without failing the test.
func dialQuiet(u string) (*fxtest.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	return fxtest.Dial(ctx, u)
}

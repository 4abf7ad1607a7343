package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fxws/websocket/internal/headless"
)

// browserPage is what the headless browser runs: authenticate, check the
// negotiated extensions, echo a large message both ways (the browser
// compresses what it sends; the server sends the echo compressed), then
// post what it saw to /result.
const browserPage = `<!doctype html><meta charset="utf-8"><script>
const out = {};
const big = "browser says hello; ".repeat(600);
const report = () => fetch("/result", {method: "POST", body: JSON.stringify(out)});
const ws = new WebSocket(WS_URL);
ws.onopen = () => ws.send(JSON.stringify({event: "authenticate", data: {token: "valid-browser"}}));
ws.onmessage = (e) => {
  const m = JSON.parse(e.data);
  if (m.event === "connected") {
    out.extensions = ws.extensions;
    out.userId = m.data.userId;
    ws.send(JSON.stringify({event: "echo", data: big}));
  } else if (m.event === "echo") {
    out.echoed = m.data === big;
    out.echoLength = m.data.length;
    report();
    ws.close(1000);
  }
};
ws.onclose = (e) => { out.closeCode = e.code; if (out.echoed === undefined) report(); };
</script>`

// TestBrowserCompression: a real browser (headless Chromium) against the
// demo with PER_MESSAGE_DEFLATE=1 and COMPRESS_MIN_SIZE: the extension is
// negotiated, the browser's compressed messages are inflated, and the
// server's compressed echo is inflated by the browser.
func TestBrowserCompression(t *testing.T) {
	headless.Chromium(t)
	p := startDemo(t, "PER_MESSAGE_DEFLATE=1", "COMPRESS_MIN_SIZE=256")
	tg := newTarget(t, p.addr, "/ws")

	results := make(chan []byte, 1)
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/":
			w.Header().Set("Content-Type", "text/html")
			_, _ = io.WriteString(w, strings.Replace(browserPage, "WS_URL", fmt.Sprintf("%q", tg.url()), 1))
		case "/result":
			b, _ := io.ReadAll(r.Body)
			select {
			case results <- b:
			default:
			}
		default:
			http.NotFound(w, r)
		}
	}))
	defer page.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	output := headless.Open(ctx, t, page.URL+"/")

	var got struct {
		Extensions string
		UserID     string
		Echoed     *bool
		EchoLength int
		CloseCode  int
	}
	select {
	case b := <-results:
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("result %s: %v", b, err)
		}
	case <-ctx.Done():
		t.Fatalf("no result from the browser; its output:\n%s", output())
	}
	t.Logf("the browser negotiated %q", got.Extensions)
	if !strings.HasPrefix(got.Extensions, "permessage-deflate") ||
		!strings.Contains(got.Extensions, "server_no_context_takeover") || !strings.Contains(got.Extensions, "client_no_context_takeover") {
		t.Fatalf("extensions the browser reports: %q", got.Extensions)
	}
	if got.UserID != "browser" || got.Echoed == nil || !*got.Echoed || got.EchoLength != 12000 {
		t.Fatalf("browser saw %+v", got)
	}
	// The server handled the echo: its hook log has it.
	found := false
	for _, raw := range tg.hooks() {
		var h struct{ Hook, UserID, Event string }
		if json.Unmarshal(raw, &h) == nil && h.Hook == "message" && h.UserID == "browser" && h.Event == "echo" {
			found = true
		}
	}
	if !found {
		t.Fatal("no echo message from the browser in the hook log")
	}
}

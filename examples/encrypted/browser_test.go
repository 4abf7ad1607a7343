package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fxws/websocket/internal/headless"
)

// reporter is appended to the page: once the server's welcome is shown it
// sends an echo, and once the echo is back (or after 20 s) it posts the
// page's log to /result.
const reporter = `<script>
const started = Date.now();
let echoed = false;
const poll = setInterval(() => {
  const text = $('log').innerText;
  if (!echoed && text.includes('← welcome') && !$('echo').disabled) {
    echoed = true;
    $('text').value = 'sealed both ways';
    $('echo').click();
  }
  if (text.includes('← echo') || Date.now() - started > 20000) {
    clearInterval(poll);
    fetch('/result', {method: 'POST', body: text});
  }
}, 20);
</script>
</body>`

// slowDevice goes before the page's script: key derivation takes 200 ms,
// as on a slow phone, so that the server's welcome arrives while the page
// is still deriving its key.
const slowDevice = `<head>
<script>
const deriveKeyNow = crypto.subtle.deriveKey.bind(crypto.subtle);
crypto.subtle.deriveKey = (...args) => new Promise(ok => setTimeout(ok, 200)).then(() => deriveKeyNow(...args));
</script>`

// TestBrowserPage runs the example's own page in a headless Chromium
// against the program: WebCrypto's ECDH, HKDF and AES-GCM against ours.
// The welcome the server sends right after `connected`, and the ticks,
// arrive while the page is still deriving its key; the page must not lose
// them (a page that handles each message as it comes, as this one once
// did, fails here with "could not decrypt").
func TestBrowserPage(t *testing.T) {
	headless.Chromium(t)
	addr, _, _ := start(t, "TICK_MS=20")
	html, err := os.ReadFile("index.html")
	if err != nil {
		t.Fatal(err)
	}
	html = bytes.Replace(html, []byte("<head>"), []byte(slowDevice), 1)
	html = bytes.Replace(html, []byte("</body>"), []byte(reporter), 1)
	results := make(chan string, 1)
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write(html)
		case "/result":
			b, _ := io.ReadAll(r.Body)
			select {
			case results <- string(b):
			default:
			}
		default:
			http.NotFound(w, r)
		}
	}))
	defer page.Close()

	for run := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		output := headless.Open(ctx, t, page.URL+"/?auto&ws=ws://"+addr+"/ws")
		var log string
		select {
		case log = <-results:
		case <-ctx.Done():
			t.Fatalf("run %d: no result from the browser; its output:\n%s", run, output())
		}
		cancel()
		for _, want := range []string{"key derived", `← welcome {"userId":"alice"}`, `← echo "sealed both ways"`} {
			if !strings.Contains(log, want) {
				t.Fatalf("run %d: the page's log lacks %q:\n%s", run, want, head(log))
			}
		}
		if strings.Contains(log, "could not decrypt") {
			t.Fatalf("run %d: the page failed to open a message:\n%s", run, head(log))
		}
	}
}

// head is the start of a page's log, enough to see what went wrong.
func head(log string) string {
	if len(log) > 2000 {
		return log[:2000] + "…"
	}
	return log
}

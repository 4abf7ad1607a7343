// Package headless runs a page in a headless Chromium for the tests that
// need a real browser: its WebSocket, compression and WebCrypto are the
// ones users' pages get.
package headless

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Chromium returns the browser binary, or ends the test: skipped on a
// machine without one, failed in CI (CI set), where .ci/run installs it.
func Chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no chromium in CI (.ci/run installs it)")
	}
	t.Skip("no chromium on this machine (apt-get install chromium)")
	return ""
}

// Open loads url in a headless Chromium until ctx ends or the test does,
// whichever comes first. The returned func gives the browser's stderr,
// for a test that got no result from the page.
func Open(ctx context.Context, t testing.TB, url string) (output func() string) {
	t.Helper()
	bin := Chromium(t)
	browser := exec.CommandContext(ctx, bin, "--headless=new", "--no-sandbox", "--disable-gpu",
		"--disable-dev-shm-usage", "--no-first-run", "--user-data-dir="+t.TempDir(), url)
	// Chromium starts helper processes: kill the whole group.
	ownGroup(browser)
	browser.Cancel = func() error { return killGroup(browser) }
	var stderr strings.Builder
	browser.Stderr = &stderr
	if err := browser.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = killGroup(browser)
		_ = browser.Wait()
	})
	return stderr.String
}

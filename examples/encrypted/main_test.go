package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/protocol"
	"github.com/gobwas/ws"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// web makes one connection per request, so that none is left behind.
var web = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}

// start builds the program once per test, runs it with env on a free port
// and waits for /healthz; the process is killed at cleanup.
func start(t *testing.T, env ...string) (addr string, cmd *exec.Cmd, exited chan error) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "encrypted")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = ln.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	ln.Close()
	cmd = exec.Command(bin)
	cmd.Env = append(os.Environ(), append([]string{"HOST=127.0.0.1", "PORT=" + port, "QUIET=1"}, env...)...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited = make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		err := <-exited
		exited <- err
		if t.Failed() {
			t.Logf("program output:\n%s", out.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := web.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr, cmd, exited
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the program never answered /healthz: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestEncryptedServer(t *testing.T) {
	addr, cmd, exited := start(t, "TICK_MS=50")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The page.
	resp, err := web.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "crypto.subtle") {
		t.Errorf("page: %d, %d bytes", resp.StatusCode, len(body))
	}

	c, err := fxtest.DialEncrypted(ctx, "ws://"+addr+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Abort()
	cd, err := c.Authenticate(ctx, map[string]string{"token": "valid-ann"})
	if err != nil {
		t.Fatal(err)
	}
	// A sealed echo, answered sealed.
	if err := c.EmitEncrypted("echo", "hello"); err != nil {
		t.Fatal(err)
	}
	if m, err := c.ExpectDecrypted(ctx, "echo"); err != nil || string(m.Data) != `"hello"` {
		t.Fatalf("echo: %s %v", m.Data, err)
	}
	// The tick counts one key: this client's. A tick counted just before
	// this client authenticated may still reach it (keys 0); the next one
	// must count it.
	for i := 0; ; i++ {
		m, err := c.ExpectDecrypted(ctx, "tick")
		if err != nil {
			t.Fatal(err)
		}
		var tick struct{ Keys int }
		if err := json.Unmarshal(m.Data, &tick); err != nil || tick.Keys > 1 || (tick.Keys == 0 && i > 0) {
			t.Fatalf("tick %s (%v), want keys 1", m.Data, err)
		}
		if tick.Keys == 1 {
			break
		}
	}
	// REST to one client.
	resp, err = web.Post("http://"+addr+"/ws-api/clients/"+cd.ID+"/send", "application/json", strings.NewReader(`{"event":"note","data":{"a":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if m, err := c.ExpectDecrypted(ctx, "note"); err != nil || string(m.Data) != `{"a":1}` {
		t.Fatalf("note: %s %v", m.Data, err)
	}
	for _, raw := range c.Messages() {
		if raw.Event != protocol.EventConnected && raw.Event != protocol.EventEncrypted {
			t.Errorf("in clear: %s %s", raw.Event, raw.Data)
		}
	}

	// A client without a key is refused.
	plain, err := fxtest.Dial(ctx, "ws://"+addr+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Abort()
	if _, err := plain.Authenticate(ctx, map[string]string{"token": "valid-bob"}); err == nil {
		t.Fatal("a client without a public key was accepted")
	}
	if code, _, _ := plain.ExpectClose(ctx); code != protocol.CloseEncryptionRequired {
		t.Errorf("close %d, want 4004", code)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, reason, _ := c.ExpectClose(ctx); code != ws.StatusGoingAway || reason != protocol.ReasonShuttingDown {
		t.Errorf("close %d %q, want 1001", code, reason)
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Errorf("exit: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("no exit after SIGTERM")
	}
}

// TestPlainMode: REQUIRE_ENCRYPTION=0 serves plain clients (the baseline
// of the load comparisons).
func TestPlainMode(t *testing.T) {
	addr, _, _ := start(t, "REQUIRE_ENCRYPTION=0", "TICK_MS=0")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := fxtest.Dial(ctx, "ws://"+addr+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Abort()
	cd, err := c.Authenticate(ctx, map[string]string{"token": "valid-cy"})
	if err != nil || cd.ServerPublicKey != "" {
		t.Fatalf("authenticate: %v %+v", err, cd)
	}
	resp, err := web.Post("http://"+addr+"/ws-api/broadcast", "application/json", strings.NewReader(`{"event":"news","data":"hi"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if m, err := c.Expect(ctx, "news"); err != nil || string(m.Data) != `"hi"` {
		t.Fatalf("news: %s %v", m.Data, err)
	}
}

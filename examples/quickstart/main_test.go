package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fxws/websocket/fxtest"
	"github.com/gobwas/ws"
)

// TestREADME: the README shows this program verbatim.
func TestREADME(t *testing.T) {
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	program := string(src[strings.Index(string(src), "package main"):])
	if !strings.Contains(string(readme), "```go\n"+program+"```\n") {
		t.Fatal("README.md does not show examples/quickstart/main.go (from `package main` on) verbatim in a go block")
	}
}

// TestQuickstart builds the program, runs it and uses it as a client would.
func TestQuickstart(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "quickstart")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	// A free port: the program takes its address from ADDR.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "ADDR="+addr)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("program output:\n%s", out.String())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var c *fxtest.Client
	for c == nil {
		c, err = fxtest.Dial(ctx, "ws://"+addr+"/ws")
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("the program never listened: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	defer c.Abort()
	cd, err := c.Authenticate(ctx, map[string]string{"token": "alice"})
	if err != nil || cd.UserID != "alice" {
		t.Fatalf("authenticate: %v %+v", err, cd)
	}
	if err := c.Join("clock"); err != nil {
		t.Fatal(err)
	}
	// The service sends to room "clock" every second.
	if _, err := c.Expect(ctx, "tick"); err != nil {
		t.Fatal(err)
	}

	bad, err := fxtest.Dial(ctx, "ws://"+addr+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Abort()
	if _, err := bad.Authenticate(ctx, map[string]string{}); err == nil {
		t.Fatal("authenticated without a token")
	}
	if code, _, _ := bad.ExpectClose(ctx); code != 4003 {
		t.Errorf("close %d, want 4003", code)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, reason, _ := c.ExpectClose(ctx); code != ws.StatusGoingAway || reason != "Server shutting down" {
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

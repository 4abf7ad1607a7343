package helper_test

// Tests from a review of the direct upgrade path (helper/direct.go): each
// is a request or a situation where it once did not behave as net/http
// and ServeHTTP do.

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fxws/websocket/helper"
	"github.com/gobwas/ws"
)

func skipUnlessDirect(t *testing.T) {
	t.Helper()
	if !helper.DirectUpgrades {
		t.Skip("Serve takes no upgrade directly on " + runtime.GOOS + "/" + runtime.GOARCH)
	}
}

// zeroMaskFrame is a masked client text frame whose mask key is 0, so that
// its payload travels as written.
func zeroMaskFrame(payload string) []byte {
	n := len(payload)
	b := []byte{0x81, 0x80 | byte(n)}
	if n >= 126 {
		b = []byte{0x81, 0x80 | 126, byte(n >> 8), byte(n)}
	}
	b = append(b, 0, 0, 0, 0)
	return append(b, payload...)
}

// upgradeAndFirstFrame writes wire in one write and returns the status of
// the answer and the payload of the first frame the server sends after it
// ("" if none came).
func upgradeAndFirstFrame(t *testing.T, k *kit, wire []byte) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(k.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(wire); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, ""
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return resp.StatusCode, ""
	}
	h, err := ws.ReadHeader(br)
	if err != nil {
		return resp.StatusCode, ""
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(br, p); err != nil {
		return resp.StatusCode, ""
	}
	return resp.StatusCode, string(p)
}

// A request whose lines end in a bare LF (net/textproto accepts it, so
// net/http upgrades it) ends at "\n\n"; the direct path once took
// everything up to the first "\r\n\r\n" out of the socket instead, here the
// beginning of the client's first frame (JSON may hold CRLFs), then lost.
func TestDirectUpgradeLeavesBareLFRequestsToNetHTTP(t *testing.T) {
	skipUnlessDirect(t)
	t.Parallel()
	p := newUpgradePair(t, nil)
	req := "GET /ws HTTP/1.1\nHost: 127.0.0.1\nUpgrade: websocket\nConnection: Upgrade\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\nSec-WebSocket-Version: 13\n\n"
	frame := zeroMaskFrame("{\"event\":\"authenticate\",\r\n\r\n\"data\":{\"token\":\"valid-lf\"}}")
	wire := append([]byte(req), frame...)

	hs, hp := upgradeAndFirstFrame(t, p.viaHTTP, wire)
	if hs != 101 || !strings.Contains(hp, `"event":"connected"`) {
		t.Fatalf("net/http: status %d, first frame %q; the test expects 101 then connected", hs, hp)
	}
	before := p.direct.h.Stats().DirectUpgrades
	ds, dp := upgradeAndFirstFrame(t, p.direct, wire)
	took := directUpgrades(p.direct, before+1) - before
	if ds != 101 || !strings.Contains(dp, `"event":"connected"`) {
		t.Errorf("direct (taken directly: %v): status %d, first frame %q; net/http: %d, %q", took == 1, ds, dp, hs, hp)
	}
}

// net/http answers 417 Expectation Failed to any Expect other than
// 100-continue, before the handler runs; the direct path once upgraded.
func TestDirectUpgradeLeavesExpectToNetHTTP(t *testing.T) {
	skipUnlessDirect(t)
	t.Parallel()
	p := newUpgradePair(t, nil)
	req := upgradeRequest("/ws", "Expect: something-else\r\n")
	want, _ := exchange(t, p.viaHTTP, req)
	if !strings.HasPrefix(want, "HTTP/1.1 417") {
		t.Fatalf("net/http answered %q, the test expects 417", want)
	}
	got, _ := exchange(t, p.direct, req)
	if got != want {
		t.Errorf("direct answered\n%q\nnet/http\n%q", got, want)
	}
}

// Options.CheckOrigin, the application's callback, must not run in the
// accept loop (the http.Server's Serve goroutine), where, while it waited,
// no other connection was accepted. Through net/http each connection has
// its own goroutine.
func TestDirectUpgradeNeverWaitsForCheckOrigin(t *testing.T) {
	skipUnlessDirect(t)
	for _, tr := range []transport{rawGoroutine, rawSocket} {
		t.Run(string(tr), func(t *testing.T) {
			t.Parallel()
			k := newKit(t, tr, func(cfg *helper.Config) {
				cfg.Options.CheckOrigin = func(r *http.Request) bool {
					if r.Header.Get("Origin") == "https://slow.example" {
						time.Sleep(1500 * time.Millisecond)
					}
					return true
				}
			})
			addr := strings.TrimPrefix(k.srv.URL, "http://")
			slow, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer slow.Close()
			if _, err := io.WriteString(slow, upgradeRequest("/ws", "Origin: https://slow.example\r\n")); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
			start := time.Now()
			got, _ := exchange(t, k, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n")
			if d := time.Since(start); !strings.HasPrefix(got, "HTTP/1.1 404") || d > 700*time.Millisecond {
				t.Errorf("another client's request was answered %q after %v, while a CheckOrigin call was slow", strings.SplitN(got, "\r\n", 2)[0], d.Round(time.Millisecond))
			}
		})
	}
}

const checkOriginPanicEnv = "FXWS_TEST_CHECKORIGIN_PANIC"

// A panic in Options.CheckOrigin is recovered by net/http (the connection
// is dropped, the server goes on); in the Serve goroutine, where the
// direct path once called it, nothing would recover it: the process died.
func TestCheckOriginPanicSparesTheProcess(t *testing.T) {
	skipUnlessDirect(t)
	if os.Getenv(checkOriginPanicEnv) != "" {
		k := newKit(t, transport(os.Getenv(checkOriginPanicEnv)), func(cfg *helper.Config) {
			cfg.Options.CheckOrigin = func(r *http.Request) bool {
				if r.Header.Get("Origin") == "https://panic.example" {
					panic("origin check exploded")
				}
				return true
			}
		})
		_, _ = exchange(t, k, upgradeRequest("/ws", "Origin: https://panic.example\r\n"))
		got, _ := exchange(t, k, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n")
		if !strings.HasPrefix(got, "HTTP/1.1 404") {
			t.Fatalf("after the panic: %q", got)
		}
		return
	}
	for _, tr := range []transport{rawGoroutine, rawSocket} {
		t.Run(string(tr), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestCheckOriginPanicSparesTheProcess$", "-test.count=1")
			cmd.Env = append(os.Environ(), checkOriginPanicEnv+"="+string(tr))
			out, err := cmd.CombinedOutput()
			if err != nil {
				lines := strings.Split(strings.TrimSpace(string(out)), "\n")
				if len(lines) > 6 {
					lines = lines[:6]
				}
				t.Errorf("the server process failed (%v):\n%s", err, strings.Join(lines, "\n"))
			}
		})
	}
}

package helper_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxws/websocket/helper"
)

// seenRequest is what an authenticator sees of the upgrade request.
type seenRequest struct {
	Method, RequestURI, URL, Host, Proto, RemoteHost string
	Header                                           http.Header
	ContentLength                                    int64
	Close                                            bool
	TLS                                              bool
}

// upgradePair serves one helper configuration twice: through
// Serve's listener (direct) and through net/http alone (the reference),
// recording what each authenticator saw.
type upgradePair struct {
	direct, viaHTTP *kit
	mu              sync.Mutex
	seen            map[*kit][]seenRequest
}

func newUpgradePair(t *testing.T, edit func(*helper.Config)) *upgradePair {
	p := &upgradePair{seen: map[*kit][]seenRequest{}}
	var direct, viaHTTP *kit
	record := func(k **kit) func(*helper.Config) {
		return func(cfg *helper.Config) {
			if edit != nil {
				edit(cfg)
			}
			auth := cfg.Handlers.Authenticate
			cfg.Handlers.Authenticate = func(ctx context.Context, req helper.AuthenticateRequest) (*helper.AuthResult, error) {
				r := req.Request
				host, _, _ := net.SplitHostPort(r.RemoteAddr)
				p.mu.Lock()
				p.seen[*k] = append(p.seen[*k], seenRequest{
					Method: r.Method, RequestURI: r.RequestURI, URL: r.URL.String(), Host: r.Host,
					Proto: r.Proto, RemoteHost: host, Header: r.Header, ContentLength: r.ContentLength,
					Close: r.Close, TLS: r.TLS != nil,
				})
				p.mu.Unlock()
				return auth(ctx, req)
			}
		}
	}
	direct = newKit(t, rawSocket, record(&direct))
	viaHTTP = newKit(t, rawGoroutine, record(&viaHTTP))
	p.direct, p.viaHTTP = direct, viaHTTP
	return p
}

var (
	dateLine      = regexp.MustCompile(`(?m)^Date: .*\r\n`)
	contentLength = regexp.MustCompile(`(?m)^Content-Length: (\d+)\r$`)
)

// exchange writes each part of req to k's server (pausing between them)
// and returns the response head, its Date line removed, and the
// connection.
func exchange(t *testing.T, k *kit, parts ...string) (string, net.Conn) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(k.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	for i, part := range parts {
		if i > 0 {
			time.Sleep(50 * time.Millisecond)
		}
		if _, err := io.WriteString(conn, part); err != nil {
			t.Fatal(err)
		}
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	var head strings.Builder
	for {
		line, err := br.ReadString('\n')
		head.WriteString(line)
		if err != nil || line == "\r\n" {
			break
		}
	}
	if m := contentLength.FindStringSubmatch(head.String()); m != nil {
		n, _ := strconv.Atoi(m[1])
		body := make([]byte, n)
		_, _ = io.ReadFull(br, body)
		head.Write(body)
	}
	return dateLine.ReplaceAllString(head.String(), ""), conn
}

func upgradeRequest(target string, extra ...string) string {
	return "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" + strings.Join(extra, "") + "\r\n"
}

// The direct path answers exactly what net/http would, byte for byte, and
// hands the callbacks the same request; what it cannot take whole goes to
// net/http untouched.
func TestDirectUpgradeAnswersAsNetHTTP(t *testing.T) {
	skipUnlessDirect(t)
	t.Parallel()
	p := newUpgradePair(t, func(cfg *helper.Config) {
		cfg.Options.AllowedOrigins = []string{"https://ok.example"}
	})
	bigCookie := "Cookie: c=" + strings.Repeat("x", 5000) + "\r\n"
	cases := []struct {
		name   string
		parts  []string
		direct bool // taken by the direct path
		status string
	}{
		{"plain", []string{upgradeRequest("/ws")}, true, "101"},
		{"query", []string{upgradeRequest("/ws?token=a&x=%20y")}, true, "101"},
		{"header forms", []string{"GET /ws HTTP/1.1\r\nhost: 127.0.0.1:80\r\nupgrade: WebSocket\r\nconnection: keep-alive, Upgrade\r\n" +
			"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\nX-Many: a\r\nX-Many: b\r\n\r\n"}, true, "101"},
		{"compression offered, not on", []string{upgradeRequest("/ws", "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n")}, true, "101"},
		{"allowed origin", []string{upgradeRequest("/ws", "Origin: https://ok.example\r\n")}, true, "101"},
		{"subprotocol asked", []string{upgradeRequest("/ws", "Sec-WebSocket-Protocol: chat\r\n")}, true, "101"},
		{"in two packets", []string{"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n", upgradeRequest("/ws")[len("GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n"):]}, false, "101"},
		{"long header", []string{upgradeRequest("/ws", bigCookie)}, false, "101"},
		{"absolute form", []string{strings.Replace(upgradeRequest("/ws"), "GET /ws", "GET http://127.0.0.1/ws", 1)}, false, "101"},
		{"refused origin", []string{upgradeRequest("/ws", "Origin: https://evil.example\r\n")}, false, "403"},
		{"other path", []string{upgradeRequest("/wsx")}, false, "404"},
		{"path prefix", []string{upgradeRequest("/ws/x")}, false, "404"},
		{"version 8", []string{strings.Replace(upgradeRequest("/ws"), "Version: 13", "Version: 8", 1)}, false, "426"},
		{"no version", []string{strings.Replace(upgradeRequest("/ws"), "Sec-WebSocket-Version: 13\r\n", "", 1)}, false, "400"},
		{"short key", []string{strings.Replace(upgradeRequest("/ws"), "dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ=", 1)}, false, "400"},
		{"no upgrade token", []string{strings.Replace(upgradeRequest("/ws"), "Connection: Upgrade", "Connection: keep-alive", 1)}, false, "400"},
		{"not websocket", []string{strings.Replace(upgradeRequest("/ws"), "Upgrade: websocket", "Upgrade: h2c", 1)}, false, "400"},
		{"post", []string{strings.Replace(upgradeRequest("/ws"), "GET", "POST", 1)}, false, "405"},
		{"http/1.0", []string{strings.Replace(upgradeRequest("/ws"), "HTTP/1.1", "HTTP/1.0", 1)}, false, "505"},
		{"no host", []string{strings.Replace(upgradeRequest("/ws"), "Host: 127.0.0.1\r\n", "", 1)}, false, "400"},
		{"two hosts", []string{upgradeRequest("/ws", "Host: b\r\n")}, false, "400"},
		{"odd host", []string{strings.Replace(upgradeRequest("/ws"), "Host: 127.0.0.1", "Host: a b", 1)}, false, "400"},
		// Upgraded by net/http, whose first read then finds "{}", no frame.
		{"with a body", []string{upgradeRequest("/ws", "Content-Length: 2\r\n") + "{}"}, false, "101 no frames"},
		{"bad header line", []string{upgradeRequest("/ws", "Bad Header: x\r\n")}, false, "400"},
	}
	for _, tc := range cases {
		before := p.direct.h.Stats().DirectUpgrades
		got, dc := exchange(t, p.direct, tc.parts...)
		want, hc := exchange(t, p.viaHTTP, tc.parts...)
		took := p.direct.h.Stats().DirectUpgrades - before
		if tc.direct {
			took = directUpgrades(p.direct, before+1) - before
		}
		status, _, noFrames := strings.Cut(tc.status, " ")
		if !strings.HasPrefix(want, "HTTP/1.1 "+status) {
			t.Errorf("%s: net/http answered %q, the test expects %s", tc.name, want, tc.status)
		}
		if got != want {
			t.Errorf("%s: direct answered\n%q\nnet/http\n%q", tc.name, got, want)
		}
		if (took == 1) != tc.direct {
			t.Errorf("%s: taken directly: %v, want %v", tc.name, took == 1, tc.direct)
		}
		if status != "101" || noFrames {
			continue
		}
		// Both connections work, and the authenticator saw the same request.
		for _, c := range []net.Conn{dc, hc} {
			if _, err := c.Write(rawFrame(true, 0, 1, true, []byte(`{"event":"authenticate","data":{"token":"valid-p"}}`))); err != nil {
				t.Fatal(err)
			}
		}
		ds, hs := p.lastSeen(t, p.direct), p.lastSeen(t, p.viaHTTP)
		if !reflect.DeepEqual(ds, hs) {
			t.Errorf("%s: the authenticator saw\n%+v\ndirectly, and\n%+v\nthrough net/http", tc.name, ds, hs)
		}
	}
}

// directUpgrades returns k's count of direct upgrades once it is want, or
// after a second: the count follows the answer, which the client may read
// first.
func directUpgrades(k *kit, want uint64) uint64 {
	deadline := time.Now().Add(time.Second)
	for {
		n := k.h.Stats().DirectUpgrades
		if n >= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// lastSeen waits for k's authenticator to have seen a request, and takes it.
func (p *upgradePair) lastSeen(t *testing.T, k *kit) seenRequest {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p.mu.Lock()
		if s := p.seen[k]; len(s) > 0 {
			p.seen[k] = s[1:]
			p.mu.Unlock()
			return s[0]
		}
		p.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatal("the authenticator saw nothing")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Refusals that depend on the server's state, not the request, also go
// through net/http: the connection limit and a helper not started.
func TestDirectUpgradeLeavesRefusalsToNetHTTP(t *testing.T) {
	skipUnlessDirect(t)
	t.Parallel()
	k := newKit(t, rawSocket, func(cfg *helper.Config) { cfg.Options.Limits.MaxConnections = 1 })
	first, _ := exchange(t, k, upgradeRequest("/ws"))
	second, _ := exchange(t, k, upgradeRequest("/ws"))
	if !strings.HasPrefix(first, "HTTP/1.1 101") || !strings.HasPrefix(second, "HTTP/1.1 503") || !strings.Contains(second, "Too many connections") {
		t.Fatalf("answers %q then %q, want 101 then 503 Too many connections", first, second)
	}
	if n := directUpgrades(k, 1); n != 1 {
		t.Fatalf("DirectUpgrades = %d, want 1", n)
	}
}

// A compression offer while compression is on is negotiated by ServeHTTP.
func TestDirectUpgradeLeavesCompressionToNetHTTP(t *testing.T) {
	skipUnlessDirect(t)
	t.Parallel()
	k := newKit(t, rawSocket, func(cfg *helper.Config) { cfg.Options.PerMessageDeflate = true })
	got, _ := exchange(t, k, upgradeRequest("/ws", "Sec-WebSocket-Extensions: permessage-deflate\r\n"))
	if !strings.HasPrefix(got, "HTTP/1.1 101") || !strings.Contains(got, "permessage-deflate") {
		t.Fatalf("answer %q, want 101 with permessage-deflate", got)
	}
	plain, _ := exchange(t, k, upgradeRequest("/ws"))
	if !strings.HasPrefix(plain, "HTTP/1.1 101") || strings.Contains(plain, "Extensions") {
		t.Fatalf("answer %q, want 101 without extensions", plain)
	}
	if n := directUpgrades(k, 1); n != 1 {
		t.Fatalf("DirectUpgrades = %d, want 1 (the request without an offer)", n)
	}
}

package helper_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/protocol"
	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
)

// deflated compresses msg as a permessage-deflate client does.
func deflated(msg string) []byte { return fxtest.Deflate([]byte(msg)) }

// upgradeExtensions sends an upgrade request offering extensions and
// returns the status and the Sec-WebSocket-Extensions of the answer.
func upgradeExtensions(t *testing.T, k *kit, offer string) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", k.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := "GET " + k.h.Path() + " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	if offer != "" {
		req += "Sec-WebSocket-Extensions: " + offer + "\r\n"
	}
	if _, err := conn.Write([]byte(req + "\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Sec-WebSocket-Extensions")
}

// PerMessageDeflate: negotiated as the original negotiates it, compressed
// messages (whole or fragmented) are handled like plain ones, and bad
// compressed input closes with the original's codes, harming nobody.
func TestPerMessageDeflate(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		const limit = 4096
		k := newKit(t, tr, func(c *helper.Config) {
			c.Options.PerMessageDeflate = true
			c.Options.MaxPayloadLength = limit
		})
		want := "permessage-deflate;server_no_context_takeover;client_no_context_takeover"
		for _, offer := range []string{"permessage-deflate; client_max_window_bits", "permessage-deflate; foo, permessage-deflate"} {
			if code, got := upgradeExtensions(t, k, offer); code != http.StatusSwitchingProtocols || got != want {
				t.Fatalf("offer %q: %d %q, want 101 %q", offer, code, got, want)
			}
		}
		for _, offer := range []string{
			"permessage-deflate; server_max_window_bits",                                 // invalid offer
			"permessage-deflate;;",                                                       // a header gobwas cannot scan
			`permessage-deflate; x="unterminated`,                                        // nor this
			"permessage-deflate; client_max_window_bits=",                                // a parameter without its value
			"permessage-deflate; client_max_window_bits= ",                               // the same
			"permessage-deflate; server_no_context_takeover; server_no_context_takeover", // repeated
		} {
			if code, got := upgradeExtensions(t, k, offer); code != http.StatusSwitchingProtocols || got != "" {
				t.Fatalf("offer %q: %d %q, want 101 without extensions", offer, code, got)
			}
		}

		watcher, _ := k.login("watcher")
		c := k.dialCompressed()
		if _, err := c.Authenticate(context.Background(), map[string]any{"token": "valid-z"}); err != nil {
			t.Fatalf("compressed authenticate: %v", err)
		}
		big := strings.Repeat("café ", 700) // 4200 bytes: the JSON is over the limit
		_ = c.Emit("chat", big[:3000])
		k.rec.waitFor(t, "compressed message", func() bool { return len(k.rec.messages) == 1 })
		if got := string(k.rec.messages[0].Message.Data); got != `"`+big[:3000]+`"` {
			t.Fatalf("data %.40s…", got)
		}
		// Fragmented: RSV1 on the first frame only, a ping in between.
		z := deflated(`{"event":"chat","data":"in pieces"}`)
		for _, f := range [][]byte{
			rawFrame(false, 4, ws.OpText, true, z[:5]),
			rawFrame(true, 0, ws.OpPing, true, []byte("mid")),
			rawFrame(true, 0, ws.OpContinuation, true, z[5:]),
		} {
			_ = c.WriteRaw(f)
		}
		k.rec.waitFor(t, "fragmented compressed message", func() bool { return len(k.rec.messages) == 2 })
		if got := string(k.rec.messages[1].Message.Data); got != `"in pieces"` {
			t.Fatalf("data %s", got)
		}
		// Plain messages still pass on a compressed connection, and the
		// server's answers are plain frames.
		_ = c.WriteFrame(ws.NewTextFrame([]byte(`{"event":"chat","data":"plain"}`)))
		k.rec.waitFor(t, "plain message", func() bool { return len(k.rec.messages) == 3 })
		roundTrip(t, c)

		for _, tc := range []struct {
			name   string
			frames [][]byte
			code   int
			reason string
		}{
			{"not deflate data", [][]byte{rawFrame(true, 4, ws.OpText, true, []byte{0xff, 0xfe, 1, 2, 3})},
				protocol.CloseInvalidPayload, "Received invalid compressed data"},
			{"inflates past the limit", [][]byte{rawFrame(true, 4, ws.OpText, true, deflated(`{"event":"chat","data":"`+big+`"}`))},
				protocol.CloseMessageTooBig, "Received too big message"},
			{"RSV1 on a continuation", [][]byte{rawFrame(false, 4, ws.OpText, true, z[:5]), rawFrame(true, 4, ws.OpContinuation, true, z[5:])},
				protocol.CloseProtocolError, "Received unexpected RSV1 bit"},
			{"RSV1 on a ping", [][]byte{rawFrame(true, 4, ws.OpPing, true, []byte("x"))},
				protocol.CloseProtocolError, "Received unexpected RSV1 bit"},
			{"inflates to invalid UTF-8", [][]byte{rawFrame(true, 4, ws.OpText, true, deflated("{\"event\":\"\xff\"}"))},
				protocol.CloseInvalidPayload, "Received invalid UTF-8"},
		} {
			bad, err := fxtest.DialCompressed(context.Background(), k.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = bad.Abort() })
			for _, f := range tc.frames {
				_ = bad.WriteRaw(f)
			}
			expectClose(t, bad, tc.code, tc.reason)
		}

		// Without the extension negotiated, RSV1 is a protocol error.
		plain := k.dial()
		_ = plain.WriteRaw(rawFrame(true, 4, ws.OpText, true, deflated(`{"event":"heartbeat"}`)))
		expectClose(t, plain, protocol.CloseProtocolError, "Received unexpected RSV1 bit")

		_, _ = k.h.Broadcast("unharmed", 1)
		expectEvent(t, watcher, "unharmed")
		expectEvent(t, c, "unharmed")
		// authenticate, chat, the fragmented one, the round trip's "not
		// json", and the one that inflated to invalid UTF-8.
		if s := k.h.Stats(); s.InflatedMessages != 5 || s.DeliveredCompressed != 0 {
			t.Fatalf("stats %+v: want 5 inflated, none sent compressed (CompressMinSize is 0)", s)
		}
	})
}

// A server without PerMessageDeflate declines every offer.
func TestPerMessageDeflateOff(t *testing.T) {
	k := newKit(t, rawSocket, nil)
	if code, got := upgradeExtensions(t, k, "permessage-deflate; client_max_window_bits"); code != http.StatusSwitchingProtocols || got != "" {
		t.Fatalf("%d %q, want 101 without extensions", code, got)
	}
	c, err := fxtest.DialCompressed(context.Background(), k.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Abort()
	if c.Compressed() {
		t.Fatal("negotiated with the option off")
	}
	if _, err := c.Authenticate(context.Background(), map[string]any{"token": "valid-p"}); err != nil {
		t.Fatal(err)
	}
}

// rawCompressedLogin dials offering permessage-deflate with extra offer
// parameters, authenticates with a plain frame, and returns the socket
// once `connected` has arrived.
func rawCompressedLogin(t *testing.T, k *kit, params string, user string) net.Conn {
	t.Helper()
	conn, br, hs, err := (ws.Dialer{Extensions: offerOf(t, "permessage-deflate"+params)}).Dial(context.Background(), k.url)
	if err != nil {
		t.Fatal(err)
	}
	if br != nil {
		t.Fatal("server spoke first")
	}
	if len(hs.Extensions) != 1 {
		t.Fatalf("extensions %v", hs.Extensions)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if _, err := conn.Write(rawFrame(true, 0, ws.OpText, true, []byte(`{"event":"authenticate","data":{"token":"valid-`+user+`"}}`))); err != nil {
		t.Fatal(err)
	}
	for {
		h, p := readCompressedFrame(t, conn)
		if h.Rsv == 0 && strings.Contains(string(p), `"connected"`) {
			return conn
		}
	}
}

func offerOf(t *testing.T, s string) []httphead.Option {
	t.Helper()
	opts, ok := httphead.ParseOptions([]byte(s), nil)
	if !ok {
		t.Fatalf("bad offer %q", s)
	}
	return opts
}

// readCompressedFrame reads one server frame, inflating it when RSV1 says
// it is compressed; the header tells which it was.
func readCompressedFrame(t *testing.T, conn net.Conn) (ws.Header, []byte) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	h, err := ws.ReadHeader(conn)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(conn, p); err != nil {
		t.Fatalf("read: %v", err)
	}
	if h.Rsv&4 != 0 {
		f, err := wsflate.DecompressFrame(ws.Frame{Header: h, Payload: p})
		if err != nil {
			t.Fatalf("inflate: %v", err)
		}
		p = f.Payload
	}
	return h, p
}

// CompressMinSize: messages at least that large go compressed to clients
// that negotiated the extension at a full window; everyone else, and
// smaller messages, get plain frames with the same content.
func TestCompressedOutbound(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, func(c *helper.Config) {
			c.Options.PerMessageDeflate = true
			c.Options.CompressMinSize = 256
		})
		full := rawCompressedLogin(t, k, "; client_max_window_bits", "full")
		limited := rawCompressedLogin(t, k, "; server_max_window_bits=10", "limited")
		plain := k.rawDial()
		_, _ = plain.Write(rawFrame(true, 0, ws.OpText, true, []byte(`{"event":"authenticate","data":{"token":"valid-plain"}}`)))
		for {
			if _, p := readCompressedFrame(t, plain); strings.Contains(string(p), `"connected"`) {
				break
			}
		}
		compressedClient, err := fxtest.DialCompressed(context.Background(), k.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = compressedClient.Abort() })
		if _, err := compressedClient.Authenticate(context.Background(), map[string]any{"token": "valid-fx"}); err != nil {
			t.Fatal(err)
		}

		big := strings.Repeat("sensor 42 reads 23.5 °C; ", 40)
		want := `{"event":"big","data":"` + big + `"}`
		if n, err := k.h.Broadcast("big", big); err != nil || n != 4 {
			t.Fatalf("broadcast: %d %v", n, err)
		}
		_, _ = k.h.Broadcast("small", "hi")
		for _, tc := range []struct {
			name       string
			conn       net.Conn
			compressed bool
		}{{"full window", full, true}, {"limited window", limited, false}, {"no extension", plain, false}} {
			h, p := readCompressedFrame(t, tc.conn)
			if string(p) != want || (h.Rsv&4 != 0) != tc.compressed {
				t.Fatalf("%s: rsv %d, %d bytes %.40q…; want compressed %v", tc.name, h.Rsv, len(p), p, tc.compressed)
			}
			if tc.compressed && h.Length >= int64(len(want)) {
				t.Fatalf("%s: compressed frame of %d bytes for a %d-byte message", tc.name, h.Length, len(want))
			}
			h, p = readCompressedFrame(t, tc.conn)
			if string(p) != `{"event":"small","data":"hi"}` || h.Rsv != 0 {
				t.Fatalf("%s: small message: rsv %d %q", tc.name, h.Rsv, p)
			}
		}
		if m := expectEvent(t, compressedClient, "big"); string(m.Data) != `"`+big+`"` {
			t.Fatalf("fxtest client: %.40s…", m.Data)
		}
		// One client's message too: SendToClient goes the same way.
		var fullID string
		k.rec.record(func() {
			for _, info := range k.rec.connected {
				if info.UserID == "full" {
					fullID = info.ClientID
				}
			}
		})
		if ok, _ := k.h.SendToClient(fullID, "big", big); !ok {
			t.Fatal("SendToClient: client not here")
		}
		if h, p := readCompressedFrame(t, full); string(p) != want || h.Rsv&4 == 0 {
			t.Fatalf("SendToClient: rsv %d %.40q…", h.Rsv, p)
		}
		// Two broadcasts to four clients, then one message: the big
		// broadcast went compressed to two of them, SendToClient to one.
		if s := k.h.Stats(); s.DeliveredCompressed != 3 || s.Delivered < 9 {
			t.Fatalf("stats %+v: want 3 delivered compressed", s)
		}
	})
}

func TestCompressMinSizeNeedsDeflate(t *testing.T) {
	_, err := helper.New(helper.Config{
		Options:  helper.Options{CompressMinSize: 100},
		Handlers: helper.Handlers{Authenticate: tokenAuth},
	})
	if err == nil || !strings.Contains(err.Error(), "CompressMinSize needs PerMessageDeflate") {
		t.Fatalf("err = %v", err)
	}
}

// CompressLevel: the same message goes out smaller at a higher level and
// inflates to the same bytes.
func TestCompressLevel(t *testing.T) {
	words := strings.Fields("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike")
	var b strings.Builder
	for i := 0; b.Len() < 64<<10; i++ {
		fmt.Fprintf(&b, "%d:%s:%s ", i*7919%1000, words[i*31%len(words)], words[i*17%len(words)])
	}
	text := b.String()
	want := `{"event":"doc","data":"` + text + `"}`
	size := map[int]int64{}
	for _, level := range []int{1, 9} {
		k := newKit(t, rawSocket, func(c *helper.Config) {
			c.Options.PerMessageDeflate = true
			c.Options.CompressMinSize = 1
			c.Options.CompressLevel = level
		})
		conn := rawCompressedLogin(t, k, "", "u")
		if n, err := k.h.Broadcast("doc", text); err != nil || n != 1 {
			t.Fatalf("level %d: broadcast: %d %v", level, n, err)
		}
		h, p := readCompressedFrame(t, conn)
		if string(p) != want || h.Rsv&4 == 0 {
			t.Fatalf("level %d: rsv %d, %d bytes", level, h.Rsv, len(p))
		}
		size[level] = h.Length
	}
	t.Logf("frame of %d bytes: %d at level 1, %d at level 9", len(want), size[1], size[9])
	if size[9] >= size[1] {
		t.Fatalf("level 9 frame (%d bytes) not smaller than level 1's (%d)", size[9], size[1])
	}
}

func TestCompressLevelValidated(t *testing.T) {
	for _, level := range []int{-1, 10} {
		_, err := helper.New(helper.Config{
			Options:  helper.Options{PerMessageDeflate: true, CompressMinSize: 100, CompressLevel: level},
			Handlers: helper.Handlers{Authenticate: tokenAuth},
		})
		if err == nil || !strings.Contains(err.Error(), "CompressLevel must be 1 (BestSpeed) to 9") {
			t.Fatalf("level %d: err = %v", level, err)
		}
	}
}

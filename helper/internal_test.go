package helper

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/fxws/websocket/protocol"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// The fast path needs a syscall.Conn; anything else takes the fallback.
func TestRawConnSelection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_ = c.Close()
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, fd := newRawConn(c)
	if hasRawPath && (raw == nil || fd < 0) {
		t.Fatal("no raw path for a *net.TCPConn on this platform")
	}
	if raw, fd := newRawConn(struct{ net.Conn }{c}); raw != nil || fd != -1 {
		t.Fatal("raw path for a conn that is not a syscall.Conn")
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if raw, fd := newRawConn(a); raw != nil || fd != -1 {
		t.Fatal("raw path for net.Pipe")
	}
}

func TestParseHeader(t *testing.T) {
	mask := []byte{1, 2, 3, 4}
	cases := []struct {
		in     []byte
		length int64
		n      int
		err    error
	}{
		{[]byte{0x81}, 0, 0, errNeedMore},
		{[]byte{0x81, 0x85}, 0, 0, errNeedMore},
		{append([]byte{0x81, 0x85}, mask...), 5, 6, nil},
		{[]byte{0x81, 0xfe, 0x01}, 0, 0, errNeedMore},
		{append([]byte{0x81, 0xfe, 0x01, 0x00}, mask...), 256, 8, nil},
		{append([]byte{0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0}, mask...), 65536, 14, nil},
		{[]byte{0x82, 0xff, 0, 0, 0, 0, 0, 1, 0}, 0, 0, errNeedMore},
	}
	for i, tc := range cases {
		h, n, err := parseHeader(tc.in)
		if !errors.Is(err, tc.err) || (err == nil && (h.length != tc.length || n != tc.n || !h.masked)) {
			t.Errorf("case %d: %+v n=%d err=%v", i, h, n, err)
		}
	}
	if _, _, err := parseHeader([]byte{0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0}); err == nil || errors.Is(err, errNeedMore) {
		t.Errorf("top length bit accepted: %v", err)
	}
}

func TestCompileFrameLengths(t *testing.T) {
	for _, n := range []int{0, 125, 126, 0xffff, 0x10000} {
		f := compileFrame(ws.OpText, bytes.Repeat([]byte{'a'}, n))
		h, err := ws.ReadHeader(bytes.NewReader(f))
		if err != nil || h.Length != int64(n) || !h.Fin || h.Masked || h.OpCode != ws.OpText {
			t.Fatalf("n=%d: %+v %v", n, h, err)
		}
	}
}

func TestCloseFrameFitsControlLimit(t *testing.T) {
	reason := strings.Repeat("é", 100) // 200 bytes
	f := closeFrame(4000, reason)
	h, _ := ws.ReadHeader(bytes.NewReader(f))
	if h.Length > 125 {
		t.Fatalf("close payload %d bytes", h.Length)
	}
	p := f[len(f)-int(h.Length):]
	if binary.BigEndian.Uint16(p) != 4000 || !utf8.Valid(p[2:]) {
		t.Fatalf("close payload %q", p)
	}
}

// protocol.AppendJSONString must agree with JSON.stringify: like encoding/json but
// without HTML escaping, and U+2028/2029 left as they are.
func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"b\s`, "\n\r\t\x00\x1f", "<b>&</b>", "é𝄞", "\u2028\u2029", "bad\xffutf8"} {
		got := protocol.AppendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%q → %s: %v", s, got, err)
		}
		if back != strings.ToValidUTF8(s, "\uFFFD") {
			t.Fatalf("%q round-tripped to %q", s, back)
		}
		if strings.Contains(s, "<") && !bytes.Contains(got, []byte("<")) {
			t.Fatalf("HTML escaped: %s", got)
		}
	}
	if got := string(messageFrame("ev", nil)[2:]); got != `{"event":"ev"}` {
		t.Fatal(got)
	}
	if got := string(messageFrame("ev", json.RawMessage(`{"a":1}`))[2:]); got != `{"event":"ev","data":{"a":1}}` {
		t.Fatal(got)
	}
}

// messageFrame writes the header in front of the encoded message; at every
// header size (the payload lengths at its edges, and an event whose
// escaping outgrows the estimate) it is the frame compileFrame makes.
func TestMessageFrame(t *testing.T) {
	for _, n := range []int{0, 102, 103, 104, 65512, 65513, 65514, 70000} { // the message is n+23 bytes: edges 125|126, 65535|65536
		data := json.RawMessage(`"` + strings.Repeat("x", n) + `"`)
		for _, event := range []string{"e", strings.Repeat("\"\x01", 40)} {
			msg := protocol.AppendMessage(nil, event, data)
			want := compileFrame(ws.OpText, msg)
			if got := messageFrame(event, data); !bytes.Equal(got, want) {
				t.Fatalf("data of %d bytes, event %q: frame differs (len %d, want %d)", n, event[:1], len(got), len(want))
			}
		}
	}
	data := json.RawMessage(`{"text":"` + strings.Repeat("x", 4000) + `"}`)
	if n := testing.AllocsPerRun(100, func() { _ = messageFrame("chat", data) }); n != 1 {
		t.Errorf("messageFrame makes %v allocations, want 1", n)
	}
}

func TestMarshalData(t *testing.T) {
	if d, err := marshalData(nil); d != nil || err != nil {
		t.Fatal(d, err)
	}
	if d, err := marshalData(json.RawMessage(nil)); d != nil || err != nil {
		t.Fatal(d, err)
	}
	if _, err := marshalData(json.RawMessage(`{`)); !errors.Is(err, ErrInvalidData) {
		t.Fatal(err)
	}
	if _, err := marshalData(make(chan int)); !errors.Is(err, ErrInvalidData) {
		t.Fatal(err)
	}
	if d, _ := marshalData("<&>"); string(d) != `"<&>"` {
		t.Fatal(string(d))
	}
}

// The spec's "no handshake callback → close 4004, no error event" path.
// New refuses that configuration, so it is reached here by removing the
// callback after New.
func TestEncryptionRequiredWithoutHandshake(t *testing.T) {
	h, err := New(Config{
		Options: Options{RequireEncryption: true},
		Handlers: Handlers{
			Authenticate: func(context.Context, AuthenticateRequest) (*AuthResult, error) { return &AuthResult{UserID: "u"}, nil },
			Handshake:    func(context.Context, HandshakeRequest) (*HandshakeResult, error) { return nil, nil },
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.handlers.Handshake = nil
	conn := startAndDial(t, h)
	if err := wsutil.WriteClientText(conn, []byte(`{"event":"authenticate"}`)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	hdr, err := ws.ReadHeader(conn)
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, hdr.Length)
	if _, err := io.ReadFull(conn, p); err != nil {
		t.Fatal(err)
	}
	if hdr.OpCode != ws.OpClose || binary.BigEndian.Uint16(p) != protocol.CloseEncryptionRequired ||
		string(p[2:]) != protocol.ReasonEncryptionRequired {
		t.Fatalf("first frame %v %q, want close 4004 without an error event", hdr.OpCode, p)
	}
}

func TestFrameBufferClasses(t *testing.T) {
	for _, c := range []struct{ size, class int }{
		{1, 0}, {8192, 0}, {8193, 1}, {16384, 1}, {16385, 2}, {1 << 20, 7}, {1<<20 + 1, 8},
	} {
		if got := frameClass(c.size); got != c.class {
			t.Errorf("frameClass(%d) = %d, want %d", c.size, got, c.class)
		}
		b := getFrameBuffer(c.size)
		if len(*b) != c.size || cap(*b) != 1<<(c.class+frameClassShift) {
			t.Errorf("getFrameBuffer(%d): len %d cap %d", c.size, len(*b), cap(*b))
		}
		putFrameBuffer(b)
	}
	// Beyond the largest class, where an int reaches past it.
	if shift := len(frameBuffers) - 1 + frameClassShift; shift < strconv.IntSize-1 {
		if frameClass(math.MaxInt) != -1 {
			t.Error("a frame beyond the largest class got a class")
		}
		huge := getFrameBuffer(1<<shift + 1)
		putFrameBuffer(huge) // not pooled; must not panic
	}
}

// A connection that finished its closing handshake must not stay reachable
// from a pending grace timer: under churn those timers held every recently
// closed client (and started a goroutine each) for closeGrace.
func TestCloseGraceTimerStoppedOnceClosed(t *testing.T) {
	h, err := New(Config{Handlers: Handlers{
		Authenticate: func(context.Context, AuthenticateRequest) (*AuthResult, error) { return &AuthResult{UserID: "u"}, nil },
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	defer h.Shutdown(context.Background())

	for _, serverFirst := range []bool{false, true} {
		conn, _, _, err := ws.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws")
		if err != nil {
			t.Fatal(err)
		}
		c := onlyClient(t, h)
		if serverFirst {
			c.closeWith(ws.StatusGoingAway, "bye")
		} else if err := wsutil.WriteClientMessage(conn, ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, "")); err != nil {
			t.Fatal(err)
		}
		// Read up to the server's close frame, answer it if the server
		// spoke first, and hang up.
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			hdr, err := ws.ReadHeader(conn)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.CopyN(io.Discard, conn, hdr.Length); err != nil {
				t.Fatal(err)
			}
			if hdr.OpCode == ws.OpClose {
				break
			}
		}
		if serverFirst {
			if err := wsutil.WriteClientMessage(conn, ws.OpClose, ws.NewCloseFrameBody(ws.StatusGoingAway, "")); err != nil {
				t.Fatal(err)
			}
		}
		_ = conn.Close()
		waitFor(t, "the grace timer stopped once the connection ended", func() bool {
			c.out.mu.Lock()
			defer c.out.mu.Unlock()
			return c.out.readerDone && c.out.closeTimer == nil
		})
		// The next round finds its client as the only one.
		waitFor(t, "the registry emptied", func() bool { return h.reg.len() == 0 })
	}
}

// pipeClient is a bare client reading from a pipe whose other end writes
// fromSocket.
func pipeClient(t *testing.T, fromSocket []byte) *client {
	a, b := net.Pipe()
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	_ = a.SetReadDeadline(time.Now().Add(5 * time.Second))
	go func() { _, _ = b.Write(fromSocket) }()
	return &client{conn: a, h: &WebSocketServerHelper{opts: Options{}.withDefaults()}}
}

// A yielding burst sets its unparsed input aside and gives the read buffer
// back; the frames then come out whole and in order, across what was set
// aside, a fresh buffer and the socket.
func TestSpilledInputIsReadFirst(t *testing.T) {
	large := bytes.Repeat([]byte("x"), 6000)
	var in []byte
	for _, p := range [][]byte{[]byte("one"), []byte("two"), large} {
		f, err := ws.CompileFrame(ws.MaskFrameInPlace(ws.NewTextFrame(bytes.Clone(p))))
		if err != nil {
			t.Fatal(err)
		}
		in = append(in, f...)
	}
	c := pipeClient(t, in[2048:])
	c.rd.pending = in[:2048]

	expect := func(want []byte) {
		t.Helper()
		_, p, err := c.next()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(p, want) {
			t.Fatalf("payload %.20q (%d bytes), want %.20q (%d bytes)", p, len(p), want, len(want))
		}
		if c.rd.large != nil {
			putFrameBuffer(c.rd.large)
			c.rd.large = nil
		}
	}
	expect([]byte("one"))
	c.rd.spill()
	if c.rd.buf != nil || len(c.rd.pending) == 0 {
		t.Fatalf("spill kept the buffer (%v) or set nothing aside (%d bytes)", c.rd.buf != nil, len(c.rd.pending))
	}
	expect([]byte("two"))
	expect(large)
}

// A frame larger than the read buffer takes what was set aside before it
// reads the socket.
func TestLargeFrameTakesPendingInputFirst(t *testing.T) {
	large := bytes.Repeat([]byte("y"), 6000)
	f, err := ws.CompileFrame(ws.MaskFrameInPlace(ws.NewTextFrame(bytes.Clone(large))))
	if err != nil {
		t.Fatal(err)
	}
	c := pipeClient(t, f[5200:])
	c.rd.buf = readBuffers.Get().(*[]byte)
	c.rd.w = copy(*c.rd.buf, f[:200])
	c.rd.pending = f[200:5200]
	_, p, err := c.next()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p, large) {
		t.Fatal("large frame assembled out of order")
	}
}

// startAndDial starts h, serves it and dials it; everything ends with the
// test.
func startAndDial(t *testing.T, h *WebSocketServerHelper) net.Conn {
	t.Helper()
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close) // after the shutdown, as cleanups run last first
	t.Cleanup(func() { _ = h.Shutdown(context.Background()) })
	conn, _, _, err := ws.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// onlyClient waits for h's one connection to be registered, and returns it.
func onlyClient(t *testing.T, h *WebSocketServerHelper) *client {
	t.Helper()
	var c *client
	waitFor(t, "the connection in the registry", func() bool {
		h.reg.mu.RLock()
		defer h.reg.mu.RUnlock()
		for _, cl := range h.reg.clients {
			c = cl
		}
		return c != nil
	})
	return c
}

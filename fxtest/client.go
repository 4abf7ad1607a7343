package fxtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/fxws/websocket/internal/wsdeflate"
	"github.com/fxws/websocket/protocol"
	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/gobwas/ws/wsutil"
)

// DefaultTimeout bounds every Expect that is not given a deadline.
const DefaultTimeout = 5 * time.Second

// Client is a protocol client for tests: it speaks the Ignis wire protocol
// to any server (ours or the original), records what arrives, and lets a test
// wait for an event or a close code. It also writes raw frames, so tests can
// send what a well-behaved client never would.
type Client struct {
	conn net.Conn
	// deflate: permessage-deflate was negotiated, so compressed server
	// messages are inflated; compressSend: SendText and Emit compress
	// (not when the server limited the client's window, which Go's
	// compressor cannot honour).
	deflate      bool
	compressSend bool

	wmu sync.Mutex

	mu       sync.Mutex
	inbox    []protocol.Message
	changed  chan struct{}
	closed   bool
	code     ws.StatusCode
	reason   string
	readErr  error
	pings    int
	received int
	// syncs counts the pings Sync sent; synced is the last of them the
	// server answered.
	syncs, synced uint64
	// gate, while reading is paused, is what Resume closes.
	gate chan struct{}
}

// Dial connects to a WebSocket URL such as ws://127.0.0.1:3000/ws.
func Dial(ctx context.Context, url string) (*Client, error) {
	return DialHeader(ctx, url, nil)
}

// DialHeader is Dial with extra request headers (Origin, cookies…).
func DialHeader(ctx context.Context, url string, header http.Header) (*Client, error) {
	return DialWith(ctx, url, DialOptions{Header: header})
}

// DialCompressed is DialHeader offering permessage-deflate, as browsers
// do, asking the server not to keep context between messages
// (server_no_context_takeover): each compressed message from it is
// inflated on its own. When the server accepts (see Compressed), SendText
// and Emit send every message compressed, each on its own, unless the
// server limited the client's window below 32 KiB (then they go plain,
// which the extension allows). A server that accepts without granting
// server_no_context_takeover fails the dial.
func DialCompressed(ctx context.Context, url string, header http.Header) (*Client, error) {
	return DialWith(ctx, url, DialOptions{Header: header, Compressed: true})
}

// DialOptions say how DialWith connects; the zero value dials as Dial.
type DialOptions struct {
	// Header is sent with the upgrade request (Origin, cookies…).
	Header http.Header
	// Compressed offers permessage-deflate, as DialCompressed.
	Compressed bool
	// TLS configures a wss:// connection: the root CAs that sign a test
	// server's certificate, a client certificate. Nil: the system's roots.
	TLS *tls.Config
}

// DialWith is Dial as opts say: for a server over TLS with a certificate
// of the test's own, DialWith(ctx, "wss://…", DialOptions{TLS: cfg}).
func DialWith(ctx context.Context, url string, opts DialOptions) (*Client, error) {
	d := ws.Dialer{Header: ws.HandshakeHeaderHTTP(opts.Header), TLSConfig: opts.TLS}
	if opts.Compressed {
		offer := wsflate.Parameters{ClientMaxWindowBits: 1, ServerNoContextTakeover: true}.Option()
		d.Extensions = []httphead.Option{offer}
	}
	conn, br, hs, err := d.Dial(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("fxtest: dial %s: %w", url, err)
	}
	c := &Client{conn: conn, changed: make(chan struct{})}
	for _, x := range hs.Extensions {
		if string(x.Name) == wsflate.ExtensionName {
			var p wsflate.Parameters
			if err := p.Parse(x); err != nil {
				_ = conn.Close()
				return nil, fmt.Errorf("fxtest: dial %s: server's permessage-deflate answer: %w", url, err)
			}
			if !p.ServerNoContextTakeover {
				_ = conn.Close()
				return nil, fmt.Errorf("fxtest: dial %s: server accepted permessage-deflate without server_no_context_takeover", url)
			}
			c.deflate = true
			c.compressSend = !p.ClientMaxWindowBits.Defined() || p.ClientMaxWindowBits == 15
		}
	}
	var r io.Reader = conn
	if br != nil {
		// The server spoke right after the handshake; br holds those bytes
		// and reads on from conn once drained.
		r = br
	}
	go c.readLoop(r)
	return c, nil
}

// readLoop reads the server's frames: control frames are answered or
// recorded as they come (also between the fragments of a message), data
// frames are put together into messages, and a compressed message
// (permessage-deflate: RSV1 on its first frame) is inflated whole once its
// last fragment is in. A frame the protocol does not allow ends the client
// with an error naming it, rather than with garbage messages.
func (c *Client) readLoop(r io.Reader) {
	var (
		msg        []byte    // the message being put together
		msgOp      ws.OpCode // its opcode; 0 between messages
		compressed bool
	)
	fail := func(format string, args ...any) {
		c.finish(0, "", fmt.Errorf("fxtest: "+format, args...))
	}
	for {
		c.mu.Lock()
		gate := c.gate
		c.mu.Unlock()
		if gate != nil {
			<-gate
		}
		h, err := ws.ReadHeader(r)
		if err != nil {
			c.finish(0, "", err)
			return
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(r, payload); err != nil {
			c.finish(0, "", err)
			return
		}
		if h.Masked {
			ws.Cipher(payload, h.Mask, 0)
		}
		if h.OpCode.IsReserved() {
			fail("server frame with reserved opcode %d", h.OpCode)
			return
		}
		if h.OpCode.IsControl() {
			if h.Rsv != 0 || !h.Fin || h.Length > ws.MaxControlFramePayloadSize {
				fail("server control frame (opcode %d) with RSV bits %03b, fragmented or over 125 bytes", h.OpCode, h.Rsv)
				return
			}
			if !c.control(h.OpCode, payload) {
				return
			}
			continue
		}
		switch h.OpCode {
		case ws.OpContinuation:
			if msgOp == 0 {
				fail("server continuation frame without a message to continue")
				return
			}
			if h.Rsv != 0 {
				fail("server continuation frame with RSV bits %03b", h.Rsv)
				return
			}
			msg = append(msg, payload...)
		case ws.OpText, ws.OpBinary:
			if msgOp != 0 {
				fail("server began a message (opcode %d) before ending the fragmented one", h.OpCode)
				return
			}
			if h.Rsv != 0 && (h.Rsv != 0x4 || !c.deflate) {
				fail("server frame (opcode %d) with RSV bits %03b it may not set", h.OpCode, h.Rsv)
				return
			}
			msg, msgOp, compressed = payload, h.OpCode, h.Rsv != 0
		default:
			fail("server frame with reserved opcode %d", h.OpCode)
			return
		}
		if !h.Fin {
			continue
		}
		body := msg
		if compressed {
			f, err := wsflate.DecompressFrame(ws.Frame{
				Header:  ws.Header{Fin: true, Rsv: ws.Rsv(true, false, false), OpCode: msgOp, Length: int64(len(body))},
				Payload: body,
			})
			if err != nil {
				fail("inflate a server message: %v", err)
				return
			}
			body = f.Payload
		}
		msg, msgOp, compressed = nil, 0, false
		c.receive(body)
	}
}

// control handles a ping, pong or close from the server; false: the
// connection is over.
func (c *Client) control(op ws.OpCode, payload []byte) bool {
	switch op {
	case ws.OpPing:
		c.mu.Lock()
		c.pings++
		c.mu.Unlock()
		_ = c.WriteFrame(ws.NewPongFrame(payload))
	case ws.OpPong:
		if n, ok := syncToken(payload); ok {
			c.mu.Lock()
			c.synced = max(c.synced, n)
			c.signalLocked()
			c.mu.Unlock()
		}
	case ws.OpClose:
		code, reason := ws.StatusNoStatusRcvd, ""
		if len(payload) >= 2 {
			code = ws.StatusCode(binary.BigEndian.Uint16(payload))
			reason = string(payload[2:])
		}
		_ = c.WriteFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(code, "")))
		c.finish(code, reason, nil)
		return false
	}
	return true
}

// receive records one whole message from the server.
func (c *Client) receive(payload []byte) {
	var m protocol.Message
	var raw struct {
		Event string          `json:"event"`
		Data  json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(payload, &raw); err != nil {
		m = protocol.Message{Event: "", Data: append(json.RawMessage(nil), payload...)}
	} else {
		m = protocol.Message{Event: raw.Event, Data: raw.Data}
	}
	c.mu.Lock()
	c.inbox = append(c.inbox, m)
	c.received++
	c.signalLocked()
	c.mu.Unlock()
}

func (c *Client) signalLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *Client) finish(code ws.StatusCode, reason string, err error) {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		c.code, c.reason, c.readErr = code, reason, err
		c.signalLocked()
	}
	c.mu.Unlock()
	_ = c.conn.Close()
}

// WriteFrame writes one frame as is, masked as a client must (unless the
// frame says otherwise through its header, for negative tests). The
// payload is masked in a copy: the caller's bytes are left as they were,
// so one body can be written twice.
func (c *Client) WriteFrame(f ws.Frame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !f.Header.Masked {
		f.Payload = bytes.Clone(f.Payload)
		f = ws.MaskFrameInPlace(f)
	}
	return ws.WriteFrame(c.conn, f)
}

// WriteRaw writes bytes to the socket without any framing.
func (c *Client) WriteRaw(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.conn.Write(b)
	return err
}

// SendText sends one text message, compressed when Compressed.
func (c *Client) SendText(s string) error {
	if c.compressSend {
		f, err := wsflate.CompressFrame(ws.NewTextFrame([]byte(s)))
		if err != nil {
			return fmt.Errorf("fxtest: compress: %w", err)
		}
		return c.WriteFrame(f)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return wsutil.WriteClientText(c.conn, []byte(s))
}

// Deflate returns p as the body of a permessage-deflate message, as a
// client sends it: compressed on its own (no context takeover), the
// stream's last 4 bytes stripped. Tests that write raw frames set RSV1 on
// a frame carrying it.
func Deflate(p []byte) []byte { return wsdeflate.Compress(p) }

// Compressed reports whether the server accepted permessage-deflate.
func (c *Client) Compressed() bool { return c.deflate }

// Emit sends `{"event": event, "data": data}`; nil data is left out.
func (c *Client) Emit(event string, data any) error {
	m := map[string]any{"event": event}
	if data != nil {
		m["data"] = data
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return c.SendText(string(b))
}

// Authenticate sends authenticate with data and waits for `connected`,
// returning its data. An error event or a close before it is an error.
func (c *Client) Authenticate(ctx context.Context, data any) (protocol.ConnectedData, error) {
	var cd protocol.ConnectedData
	if err := c.Emit(protocol.EventAuthenticate, data); err != nil {
		return cd, err
	}
	m, err := c.ExpectAny(ctx, protocol.EventConnected, protocol.EventError)
	if err != nil {
		return cd, err
	}
	if m.Event == protocol.EventError {
		return cd, fmt.Errorf("fxtest: authentication refused: %s", m.Data)
	}
	err = json.Unmarshal(m.Data, &cd)
	return cd, err
}

// Join asks to join rooms (no answer is sent by the protocol).
func (c *Client) Join(rooms ...string) error {
	return c.Emit(protocol.EventJoin, protocol.RoomsData{Rooms: rooms})
}

// Leave asks to leave rooms.
func (c *Client) Leave(rooms ...string) error {
	return c.Emit(protocol.EventLeave, protocol.RoomsData{Rooms: rooms})
}

// Sync waits until the server has handled everything this client sent
// before it: it sends a protocol ping and waits for its pong, which this
// library's servers answer in turn, after the frames before it (a join
// checked and done, a message's handler returned). The protocol's own
// events have no answer, so a test that joins, leaves and joins again, or
// sends and then looks at the server, needs this before it looks. (The
// original answers pings as they arrive, ahead of its handlers.)
func (c *Client) Sync(ctx context.Context) error {
	ctx, cancel := withDefault(ctx)
	defer cancel()
	c.mu.Lock()
	c.syncs++
	n, closed := c.syncs, c.closed
	c.mu.Unlock()
	if closed {
		return fmt.Errorf("%w before a sync", ErrClosed)
	}
	if err := c.WriteFrame(ws.NewPingFrame(strconv.AppendUint([]byte(syncPrefix), n, 10))); err != nil {
		return fmt.Errorf("fxtest: sync: %w", err)
	}
	for {
		c.mu.Lock()
		done, closed, ch := c.synced >= n, c.closed, c.changed
		c.mu.Unlock()
		switch {
		case done:
			return nil
		case closed:
			return fmt.Errorf("%w while waiting for a sync", ErrClosed)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("fxtest: sync not answered: %w", ctx.Err())
		}
	}
}

// syncPrefix starts the payload of Sync's pings.
const syncPrefix = "fxtest-sync-"

// syncToken reads the number of a Sync ping's pong.
func syncToken(p []byte) (uint64, bool) {
	rest, ok := bytes.CutPrefix(p, []byte(syncPrefix))
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(string(rest), 10, 64)
	return n, err == nil
}

// Heartbeat sends the application heartbeat.
func (c *Client) Heartbeat() error { return c.Emit(protocol.EventHeartbeat, nil) }

// ErrClosed is returned by Expect when the connection closed first.
var ErrClosed = errors.New("fxtest: connection closed")

// Expect waits for the next message of event (earlier messages of other
// events stay in the inbox) until ctx ends or DefaultTimeout passes.
func (c *Client) Expect(ctx context.Context, event string) (protocol.Message, error) {
	return c.ExpectAny(ctx, event)
}

// ExpectAny waits for the first message whose event is one of events; with
// no events, for the first message of any event.
func (c *Client) ExpectAny(ctx context.Context, events ...string) (protocol.Message, error) {
	ctx, cancel := withDefault(ctx)
	defer cancel()
	for {
		c.mu.Lock()
		for i, m := range c.inbox {
			if len(events) == 0 {
				c.inbox = append(c.inbox[:i:i], c.inbox[i+1:]...)
				c.mu.Unlock()
				return m, nil
			}
			for _, e := range events {
				if m.Event == e {
					c.inbox = append(c.inbox[:i:i], c.inbox[i+1:]...)
					c.mu.Unlock()
					return m, nil
				}
			}
		}
		closed, ch := c.closed, c.changed
		code, reason := c.code, c.reason
		c.mu.Unlock()
		if closed {
			return protocol.Message{}, fmt.Errorf("%w (code %d %q) while waiting for %s", ErrClosed, code, reason, eventsText(events))
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return protocol.Message{}, fmt.Errorf("fxtest: no %s: %w", eventsText(events), ctx.Err())
		}
	}
}

// eventsText names what ExpectAny waits for, in its errors.
func eventsText(events []string) string {
	if len(events) == 0 {
		return "message"
	}
	return fmt.Sprint(events)
}

// ExpectError waits for an error event and returns its message text.
func (c *Client) ExpectError(ctx context.Context) (string, error) {
	m, err := c.Expect(ctx, protocol.EventError)
	if err != nil {
		return "", err
	}
	var d protocol.ErrorData
	err = json.Unmarshal(m.Data, &d)
	return d.Message, err
}

// ExpectClose waits for the server to close the connection and returns the
// close code and reason (ws.StatusNoStatusRcvd if the socket just ended).
func (c *Client) ExpectClose(ctx context.Context) (ws.StatusCode, string, error) {
	ctx, cancel := withDefault(ctx)
	defer cancel()
	for {
		c.mu.Lock()
		closed, ch, code, reason := c.closed, c.changed, c.code, c.reason
		c.mu.Unlock()
		if closed {
			if code == 0 {
				code = ws.StatusNoStatusRcvd
			}
			return code, reason, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, "", fmt.Errorf("fxtest: connection still open: %w", ctx.Err())
		}
	}
}

// ExpectNothing asserts that no message of event arrives within d.
func (c *Client) ExpectNothing(event string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	m, err := c.Expect(ctx, event)
	if err == nil {
		return fmt.Errorf("fxtest: unexpected %q: %s", event, m.Data)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return err
}

// Messages returns and clears the inbox.
func (c *Client) Messages() []protocol.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.inbox
	c.inbox = nil
	return out
}

// Received is the number of messages received so far.
func (c *Client) Received() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.received
}

// Pings is the number of protocol pings the server sent.
func (c *Client) Pings() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pings
}

// Closed reports whether the connection has ended.
func (c *Client) Closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Pause stops reading from the server, as a client that stalled (a frozen
// tab, a phone on a dead link) or reads too slowly: what the server sends
// waits in the kernels' buffers (a few MiB on loopback, less with the
// server's Options.SendBufferSize), then in the server, whose backlog and
// backpressure a test can then look at. A read under way when it is
// called finishes first: one more message may arrive. The client still
// sends. Resume reads again; Close and Abort resume first.
func (c *Client) Pause() {
	c.mu.Lock()
	if c.gate == nil {
		c.gate = make(chan struct{})
	}
	c.mu.Unlock()
}

// Resume reads again after Pause.
func (c *Client) Resume() {
	c.mu.Lock()
	if c.gate != nil {
		close(c.gate)
		c.gate = nil
	}
	c.mu.Unlock()
}

// Close sends a normal close frame and ends the connection.
func (c *Client) Close() error {
	c.Resume()
	_ = c.WriteFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, _, _ = c.ExpectClose(ctx)
	return c.conn.Close()
}

// Abort drops the TCP connection without a close frame.
func (c *Client) Abort() error {
	c.Resume()
	return c.conn.Close()
}

// Conn is the underlying connection, for tests that need it.
func (c *Client) Conn() net.Conn { return c.conn }

func withDefault(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx == nil {
		ctx = context.Background()
	}
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}

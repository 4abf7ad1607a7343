package helper_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/protocol"
	"github.com/gobwas/ws"
)

// rawDial opens a WebSocket connection that nothing reads unless the test
// does.
func (k *kit) rawDial() net.Conn {
	k.t.Helper()
	conn, br, _, err := ws.Dial(context.Background(), k.url)
	if err != nil {
		k.t.Fatalf("dial: %v", err)
	}
	if br != nil {
		k.t.Fatal("server spoke before the client did")
	}
	k.t.Cleanup(func() { _ = conn.Close() })
	return conn
}

type serverFrame struct {
	op      ws.OpCode
	payload []byte
}

// readFrame reads one server frame within 5 s.
func readFrame(t *testing.T, conn net.Conn) (serverFrame, error) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	h, err := ws.ReadHeader(conn)
	if err != nil {
		return serverFrame{}, err
	}
	if h.Masked {
		t.Fatal("server sent a masked frame")
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(conn, p); err != nil {
		return serverFrame{}, err
	}
	return serverFrame{h.OpCode, p}, nil
}

// readUntilClose reads frames until the close frame and returns the others.
func readUntilClose(t *testing.T, conn net.Conn) (others []serverFrame, code int, reason string) {
	t.Helper()
	for {
		f, err := readFrame(t, conn)
		if err != nil {
			t.Fatalf("no close frame: %v", err)
		}
		if f.op == ws.OpClose {
			if len(f.payload) >= 2 {
				code = int(binary.BigEndian.Uint16(f.payload))
				reason = string(f.payload[2:])
			}
			return others, code, reason
		}
		others = append(others, f)
	}
}

func closeBody(code uint16, reason string) []byte {
	b := binary.BigEndian.AppendUint16(nil, code)
	return append(b, reason...)
}

// Bad input closes the offender with the RFC 6455 code and harms nobody.
func TestProtocolViolationsCloseWithRFCCodes(t *testing.T) {
	cases := []struct {
		name  string
		bytes [][]byte
		code  int
	}{
		{"unmasked text frame", [][]byte{rawFrame(true, 0, ws.OpText, false, []byte(`{"event":"heartbeat"}`))}, protocol.CloseProtocolError},
		{"ping over 125 bytes", [][]byte{rawFrame(true, 0, ws.OpPing, true, make([]byte, 126))}, protocol.CloseProtocolError},
		{"close over 125 bytes", [][]byte{rawFrame(true, 0, ws.OpClose, true, append(closeBody(1000, ""), make([]byte, 124)...))}, protocol.CloseProtocolError},
		{"fragmented ping", [][]byte{rawFrame(false, 0, ws.OpPing, true, []byte("x"))}, protocol.CloseProtocolError},
		{"reserved bit", [][]byte{rawFrame(true, 4, ws.OpText, true, []byte(`{}`))}, protocol.CloseProtocolError},
		{"unknown opcode", [][]byte{rawFrame(true, 0, ws.OpCode(3), true, nil)}, protocol.CloseProtocolError},
		{"unknown control opcode", [][]byte{rawFrame(true, 0, ws.OpCode(0xb), true, nil)}, protocol.CloseProtocolError},
		{"continuation without start", [][]byte{rawFrame(true, 0, ws.OpContinuation, true, []byte("x"))}, protocol.CloseProtocolError},
		{"new message inside fragmented", [][]byte{
			rawFrame(false, 0, ws.OpText, true, []byte(`{"ev`)),
			rawFrame(true, 0, ws.OpText, true, []byte(`{}`)),
		}, protocol.CloseProtocolError},
		{"64-bit length with top bit", [][]byte{{0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}}, protocol.CloseProtocolError},
		{"invalid UTF-8 text", [][]byte{rawFrame(true, 0, ws.OpText, true, []byte("{\"event\":\"\xff\xfe\"}"))}, protocol.CloseInvalidPayload},
		{"invalid UTF-8 across fragments", [][]byte{
			rawFrame(false, 0, ws.OpText, true, []byte("{\"event\":\"\xc3")),
			rawFrame(true, 0, ws.OpContinuation, true, []byte("(\"}")),
		}, protocol.CloseInvalidPayload},
		{"close payload of one byte", [][]byte{rawFrame(true, 0, ws.OpClose, true, []byte{3})}, protocol.CloseProtocolError},
		{"close code 1005", [][]byte{rawFrame(true, 0, ws.OpClose, true, closeBody(1005, ""))}, protocol.CloseProtocolError},
		{"close code 999", [][]byte{rawFrame(true, 0, ws.OpClose, true, closeBody(999, ""))}, protocol.CloseProtocolError},
		{"close code 5000", [][]byte{rawFrame(true, 0, ws.OpClose, true, closeBody(5000, ""))}, protocol.CloseProtocolError},
		{"close reason not UTF-8", [][]byte{rawFrame(true, 0, ws.OpClose, true, closeBody(1000, "\xff"))}, protocol.CloseInvalidPayload},
	}
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, nil)
		watcher, _ := k.login("watcher")
		for _, tc := range cases {
			for _, authed := range []bool{false, true} {
				c := k.dial()
				if authed {
					if _, err := c.Authenticate(context.Background(), map[string]any{"token": "valid-bad"}); err != nil {
						t.Fatal(err)
					}
				}
				for _, b := range tc.bytes {
					if err := c.WriteRaw(b); err != nil {
						t.Fatalf("%s: write: %v", tc.name, err)
					}
				}
				code, _, err := c.ExpectClose(context.Background())
				if err != nil || int(code) != tc.code {
					t.Fatalf("%s (authenticated %v): close %d %v, want %d", tc.name, authed, code, err, tc.code)
				}
			}
		}
		k.rec.waitFor(t, "every offender disconnected", func() bool { return len(k.rec.disconnected) == 2*len(cases) })
		_, _ = k.h.Broadcast("unharmed", 1)
		expectEvent(t, watcher, "unharmed")
		if s := k.h.Stats(); s.Clients != 1 {
			t.Fatalf("stats %+v", s)
		}
	})
}

// Fragmented messages are reassembled, with control frames in between and a
// character split across fragments.
func TestFragmentedMessage(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, nil)
		c, _ := k.login("u1")
		frames := [][]byte{
			rawFrame(false, 0, ws.OpText, true, []byte(`{"event":"chat","data":"caf`)),
			rawFrame(true, 0, ws.OpPing, true, []byte("mid")),
			rawFrame(false, 0, ws.OpContinuation, true, []byte{0xc3}),
			rawFrame(false, 0, ws.OpContinuation, true, nil),
			rawFrame(true, 0, ws.OpContinuation, true, []byte{0xa9, '"', '}'}),
		}
		for _, f := range frames {
			if err := c.WriteRaw(f); err != nil {
				t.Fatal(err)
			}
		}
		k.rec.waitFor(t, "reassembled message", func() bool { return len(k.rec.messages) == 1 })
		if got := string(k.rec.messages[0].Message.Data); got != `"café"` {
			t.Fatalf("data %s", got)
		}
		roundTrip(t, c)
	})
}

// Binary frames are read as text, as the original does; binary data that is
// not UTF-8 cannot be JSON and gets the spec's error event, not a close.
func TestBinaryFrames(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, nil)
		c, _ := k.login("u1")
		_ = c.WriteFrame(ws.NewBinaryFrame([]byte(`{"event":"chat","data":1}`)))
		k.rec.waitFor(t, "binary message handled", func() bool { return len(k.rec.messages) == 1 })
		_ = c.WriteFrame(ws.NewBinaryFrame([]byte{0xff, 0x00, 0x81, 0x7f}))
		expectError(t, c, protocol.ErrTextInvalidFormat)
		_ = c.WriteFrame(ws.NewBinaryFrame([]byte("junk")))
		expectError(t, c, protocol.ErrTextInvalidFormat)
		roundTrip(t, c)
	})
}

// A client ping is answered with a pong carrying its payload; a client close
// is echoed and runs the disconnect path.
func TestPingPongAndClientClose(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, nil)
		conn := k.rawDial()
		if _, err := conn.Write(rawFrame(true, 0, ws.OpPing, true, []byte("hello"))); err != nil {
			t.Fatal(err)
		}
		f, err := readFrame(t, conn)
		if err != nil || f.op != ws.OpPong || string(f.payload) != "hello" {
			t.Fatalf("pong: %+v %v", f, err)
		}
		if _, err := conn.Write(rawFrame(true, 0, ws.OpClose, true, closeBody(4000, "bye"))); err != nil {
			t.Fatal(err)
		}
		_, code, _ := readUntilClose(t, conn)
		if code != 4000 {
			t.Fatalf("echoed close code %d, want 4000", code)
		}
		if _, err := readFrame(t, conn); err == nil {
			t.Fatal("frame after close")
		}
		k.rec.waitFor(t, "disconnect", func() bool { return len(k.rec.disconnected) == 1 })

		c, _ := k.login("u1")
		_ = c.WriteFrame(ws.NewCloseFrame(nil)) // no status: echoed as 1000
		expectClose(t, c, int(ws.StatusNormalClosure), "")
	})
}

// maxPayloadLength: a message just at the limit passes, one byte more (in
// one frame, across fragments, or only announced) closes with 1009.
func TestMaxPayloadLength(t *testing.T) {
	const limit = 1024
	msgOf := func(n int) []byte {
		head, tail := `{"event":"chat","data":"`, `"}`
		return []byte(head + strings.Repeat("x", n-len(head)-len(tail)) + tail)
	}
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, func(c *helper.Config) { c.Options.MaxPayloadLength = limit })
		watcher, _ := k.login("watcher")
		c, _ := k.login("u1")
		_ = c.SendText(string(msgOf(limit)))
		k.rec.waitFor(t, "message at the limit", func() bool { return len(k.rec.messages) == 1 })

		_ = c.SendText(string(msgOf(limit + 1)))
		expectClose(t, c, protocol.CloseMessageTooBig, "")

		c2, _ := k.login("u2")
		m := msgOf(limit + 1)
		_ = c2.WriteRaw(rawFrame(false, 0, ws.OpText, true, m[:600]))
		_ = c2.WriteRaw(rawFrame(true, 0, ws.OpContinuation, true, m[600:]))
		expectClose(t, c2, protocol.CloseMessageTooBig, "")

		c3 := k.dial()
		// Announces 1 TiB and sends nothing more: refused at the header.
		_ = c3.WriteRaw([]byte{0x81, 0xff, 0, 0, 1, 0, 0, 0, 0, 0, 1, 2, 3, 4})
		expectClose(t, c3, protocol.CloseMessageTooBig, "")

		_, _ = k.h.Broadcast("unharmed", 1)
		expectEvent(t, watcher, "unharmed")
	})
}

// Spec "Heartbeat": silent authenticated clients get 4002; a client sending
// heartbeats stays; unauthenticated clients are the auth timer's business.
func TestHeartbeatSweep(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		// The heartbeating client must never stall for most of a timeout:
		// a second leaves room for a loaded machine under -race.
		const timeout = time.Second
		k := newKit(t, tr, func(c *helper.Config) {
			c.Options.HeartbeatInterval = 50 * time.Millisecond
			c.Options.HeartbeatTimeout = timeout
			c.Options.AuthTimeout = time.Hour
		})
		silent, scd := k.login("silent")
		alive, _ := k.login("alive")
		_ = alive.Heartbeat()
		unauth := k.dial()
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			tick := time.NewTicker(timeout / 10)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					_ = alive.Heartbeat()
				}
			}
		}()
		expectClose(t, silent, protocol.CloseHeartbeatTimeout, protocol.ReasonHeartbeatTimeout)
		k.rec.waitFor(t, "silent disconnected", func() bool { return len(k.rec.disconnected) == 1 })
		if k.rec.disconnectedIDs()[0] != scd.ID {
			t.Fatal("wrong client swept")
		}
		// More timeouts pass for the heartbeating client.
		time.Sleep(2 * timeout)
		close(stop)
		<-done
		roundTrip(t, alive)
		roundTrip(t, unauth)
		expectClose(t, alive, protocol.CloseHeartbeatTimeout, protocol.ReasonHeartbeatTimeout)
		if unauth.Closed() {
			t.Fatal("heartbeat sweep closed an unauthenticated client")
		}
	})
}

// PingsAreHeartbeats: a device whose stack pings, and whose firmware sends
// no heartbeat event (an IoT trial's), is kept while it pings, and closed
// 4002 once it stops.
func TestPingsAreHeartbeats(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		const timeout = time.Second
		k := newKit(t, tr, func(c *helper.Config) {
			c.Options.HeartbeatInterval = 50 * time.Millisecond
			c.Options.HeartbeatTimeout = timeout
			c.Options.PingsAreHeartbeats = true
		})
		device, _ := k.login("device")
		for range 25 { // 2.5 timeouts
			if err := device.WriteFrame(ws.NewPingFrame(nil)); err != nil {
				t.Fatal(err)
			}
			time.Sleep(timeout / 10)
		}
		if device.Closed() {
			t.Fatal("a client that pinged on time was closed")
		}
		roundTrip(t, device)
		expectClose(t, device, protocol.CloseHeartbeatTimeout, protocol.ReasonHeartbeatTimeout)
	})
}

// Protocol pings keep an answering socket open past idleTimeout but do not
// count as application activity.
func TestPingsAndIdleTimeout(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		// A ping goes out after idle/2 of silence and the sweep runs every
		// idle/4, so a client has at least idle/4 to answer: 200 ms here,
		// ample even on a loaded machine under the race detector.
		const idle = 800 * time.Millisecond
		t.Run("answering pings stays open", func(t *testing.T) {
			k := newKit(t, tr, func(c *helper.Config) { c.Options.IdleTimeout = idle })
			c, _ := k.login("u1")
			time.Sleep(3 * idle)
			if c.Pings() == 0 {
				t.Fatal("no protocol pings sent")
			}
			roundTrip(t, c)
		})
		t.Run("pongs are not heartbeats", func(t *testing.T) {
			k := newKit(t, tr, func(c *helper.Config) {
				c.Options.IdleTimeout = idle
				c.Options.HeartbeatInterval = 25 * time.Millisecond
				c.Options.HeartbeatTimeout = 3 * idle
			})
			c, _ := k.login("u1")
			expectClose(t, c, protocol.CloseHeartbeatTimeout, protocol.ReasonHeartbeatTimeout)
			if c.Pings() == 0 {
				t.Fatal("no protocol pings sent")
			}
		})
		t.Run("silent socket is cut", func(t *testing.T) {
			k := newKit(t, tr, func(c *helper.Config) { c.Options.IdleTimeout = idle / 2 })
			conn := k.rawDial()
			others, code, reason := readUntilClose(t, conn)
			pings := 0
			for _, f := range others {
				if f.op == ws.OpPing {
					pings++
				}
			}
			if pings == 0 || code != protocol.CloseGoingAway || reason != protocol.ReasonIdleTimeout {
				t.Fatalf("pings %d, close %d %q", pings, code, reason)
			}
			k.rec.waitFor(t, "disconnect", func() bool { return len(k.rec.disconnected) == 1 })
		})
		t.Run("pings disabled", func(t *testing.T) {
			k := newKit(t, tr, func(c *helper.Config) {
				c.Options.IdleTimeout = idle / 2
				c.Options.DisablePings = true
			})
			c, _ := k.login("u1")
			expectClose(t, c, protocol.CloseGoingAway, protocol.ReasonIdleTimeout)
			if n := c.Pings(); n != 0 {
				t.Fatalf("%d pings with DisablePings", n)
			}
		})
	})
}

// readUntilCloseOrEOF is readUntilClose for a socket the server may have cut
// before its close frame got through: code 0 means no close frame arrived.
func readUntilCloseOrEOF(t *testing.T, conn net.Conn) (others []serverFrame, code int, reason string) {
	t.Helper()
	for {
		f, err := readFrame(t, conn)
		if err != nil {
			return others, 0, ""
		}
		if f.op == ws.OpClose {
			if len(f.payload) >= 2 {
				code = int(binary.BigEndian.Uint16(f.payload))
				reason = string(f.payload[2:])
			}
			return others, code, reason
		}
		others = append(others, f)
	}
}

// Answers a burst holds back for one write keep the order of the input
// they answer, and the closing handshake still ends the burst.
func TestAnswersToOnePacketKeepTheirOrder(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, nil)
		conn := k.rawDial()
		var packet []byte
		for i := 0; i < 30; i++ {
			packet = append(packet, rawFrame(true, 0, ws.OpText, true, []byte(`{"event":"x"}`))...)
		}
		packet = append(packet, rawFrame(true, 0, ws.OpPing, true, []byte("p1"))...)
		packet = append(packet, rawFrame(true, 0, ws.OpText, true, []byte(`not json`))...)
		packet = append(packet, rawFrame(true, 0, ws.OpPing, true, []byte("p2"))...)
		packet = append(packet, rawFrame(true, 0, ws.OpClose, true, closeBody(1000, ""))...)
		if _, err := conn.Write(packet); err != nil {
			t.Fatal(err)
		}
		others, code, _ := readUntilClose(t, conn)
		var got []string
		for _, f := range others {
			switch f.op {
			case ws.OpPong:
				got = append(got, "pong "+string(f.payload))
			case ws.OpText:
				var m protocol.Message
				if err := json.Unmarshal(f.payload, &m); err != nil {
					t.Fatalf("server sent %q", f.payload)
				}
				var d struct{ Message string }
				_ = json.Unmarshal(m.Data, &d)
				got = append(got, m.Event+" "+d.Message)
			}
		}
		want := slices.Repeat([]string{"error Not authenticated"}, 30)
		want = append(want, "pong p1", "error Invalid message format", "pong p2")
		if !slices.Equal(got, want) {
			t.Fatalf("answers %q, want %q", got, want)
		}
		if code != 1000 {
			t.Fatalf("close %d, want 1000", code)
		}
	})
}

// Nothing the client waits for is held while the server waits for input:
// not the close frame of a violation (the server then drains the socket),
// nor the answers to input that exactly filled the read buffer (the next
// read finds nothing and waits). Either would otherwise sit until a
// timeout; half a second is far below every timeout involved.
func TestHeldAnswersLeaveBeforeTheServerWaits(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, nil)
		conn := k.rawDial()
		start := time.Now()
		if _, err := conn.Write(rawFrame(true, 0, ws.OpText, false, []byte(`{}`))); err != nil {
			t.Fatal(err)
		}
		if _, code, _ := readUntilClose(t, conn); code != protocol.CloseProtocolError {
			t.Fatalf("close %d, want %d", code, protocol.CloseProtocolError)
		}
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Fatalf("close frame after %v", d)
		}

		conn = k.rawDial()
		const pings = 256 // 16 bytes each: exactly the 4 KiB read buffer
		var packet []byte
		for i := 0; i < pings; i++ {
			packet = append(packet, rawFrame(true, 0, ws.OpPing, true, []byte(fmt.Sprintf("ping-%05d", i)))...)
		}
		if len(packet) != 4096 {
			t.Fatalf("packet of %d bytes", len(packet))
		}
		start = time.Now()
		if _, err := conn.Write(packet); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < pings; i++ {
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			f, err := readFrame(t, conn)
			if err != nil {
				t.Fatalf("pong %d: %v", i, err)
			}
			if f.op != ws.OpPong || string(f.payload) != fmt.Sprintf("ping-%05d", i) {
				t.Fatalf("frame %d: %v %q", i, f.op, f.payload)
			}
		}
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Fatalf("pongs after %v", d)
		}
	})
}

// Input that arrives in pieces is read whole: a frame larger than the read
// buffer whose payload comes in three writes with pauses between them (the
// reader finds the socket empty mid-frame and must wait for the rest), and
// a small frame split inside its header. A peer that leaves in the middle
// of a frame is disconnected without a message.
func TestFramesArrivingInPieces(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, nil)
		c, _ := k.login("u1")
		big := `{"event":"chat","data":"` + strings.Repeat("p", 20000) + `"}`
		f := rawFrame(true, 0, ws.OpText, true, []byte(big))
		for _, piece := range [][]byte{f[:3000], f[3000:12000], f[12000:]} {
			if err := c.WriteRaw(piece); err != nil {
				t.Fatal(err)
			}
			time.Sleep(30 * time.Millisecond)
		}
		small := rawFrame(true, 0, ws.OpText, true, []byte(`{"event":"chat","data":"s"}`))
		for _, piece := range [][]byte{small[:1], small[1:4], small[4:]} {
			if err := c.WriteRaw(piece); err != nil {
				t.Fatal(err)
			}
			time.Sleep(30 * time.Millisecond)
		}
		k.rec.waitFor(t, "both messages", func() bool { return len(k.rec.messages) == 2 })
		if got := len(k.rec.messages[0].Message.Data); got != 20002 {
			t.Fatalf("large message data is %d bytes, want 20002", got)
		}
		if got := string(k.rec.messages[1].Message.Data); got != `"s"` {
			t.Fatalf("small message data %s", got)
		}

		c2, info := k.login("u2")
		if err := c2.WriteRaw(f[:9000]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Millisecond)
		_ = c2.Abort()
		k.rec.waitFor(t, "the peer gone mid-frame disconnected", func() bool {
			return slices.ContainsFunc(k.rec.disconnected, func(d helper.ClientInfo) bool { return d.ClientID == info.ID })
		})
		if n := k.rec.messageCount(); n != 2 {
			t.Fatalf("%d messages, want 2: a cut frame was delivered", n)
		}
	})
}

// A client's close is echoed with its code and its reason, as the
// original (Bun) does (from a mixed-fleet trial: we echoed the code with
// no reason).
func TestClientCloseEchoedWithItsReason(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, nil)
		conn, _ := k.rawClient("u1", 0)
		defer conn.Close()
		if _, err := conn.Write(rawFrame(true, 0, ws.OpClose, true, ws.NewCloseFrameBody(4000, "bye"))); err != nil {
			t.Fatal(err)
		}
		if _, code, reason := readUntilClose(t, conn); code != 4000 || reason != "bye" {
			t.Fatalf("close echoed as %d %q, want 4000 \"bye\"", code, reason)
		}
	})
}

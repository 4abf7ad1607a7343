package fxtest_test

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/internal/wsdeflate"
	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
)

// stubServer upgrades one connection, answering a permessage-deflate offer
// with answer (nil: decline), runs serve on it, then reads until the
// client goes; the test's cleanup waits for all of it.
func stubServer(t *testing.T, answer func() httphead.Option, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
	})
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		u := ws.Upgrader{Negotiate: func(o httphead.Option) (httphead.Option, error) {
			if answer == nil {
				return httphead.Option{}, nil
			}
			return answer(), nil
		}}
		if _, err := u.Upgrade(conn); err != nil {
			return
		}
		serve(conn)
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.Copy(io.Discard, conn)
	}()
	return "ws://" + ln.Addr().String() + "/"
}

func deflateAnswer(params ...string) func() httphead.Option {
	return func() httphead.Option {
		o := httphead.Option{Name: []byte("permessage-deflate")}
		for _, p := range params {
			k, v, _ := strings.Cut(p, "=")
			o.Parameters.Set([]byte(k), []byte(v))
		}
		return o
	}
}

// The client asks for server_no_context_takeover (it inflates each message
// on its own) and refuses a server that does not grant it.
func TestDialCompressedNeedsServerNoContextTakeover(t *testing.T) {
	url := stubServer(t, deflateAnswer("client_no_context_takeover"), func(net.Conn) {})
	if c, err := fxtest.DialCompressed(context.Background(), url, nil); err == nil {
		_ = c.Abort()
		t.Fatal("dial accepted a server that keeps context between messages")
	}
}

// A server that limits the client's window gets plain frames from it.
func TestDialCompressedHonoursClientWindow(t *testing.T) {
	got := make(chan ws.Header, 1)
	url := stubServer(t, deflateAnswer("server_no_context_takeover", "client_max_window_bits=9"), func(conn net.Conn) {
		h, err := ws.ReadHeader(conn)
		if err == nil {
			got <- h
		}
	})
	c, err := fxtest.DialCompressed(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Abort()
	if !c.Compressed() {
		t.Fatal("extension not negotiated")
	}
	_ = c.SendText(strings.Repeat("window ", 100))
	select {
	case h := <-got:
		if h.Rsv != 0 {
			t.Fatalf("sent a compressed frame (rsv %03b) to a server that limited the window", h.Rsv)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no frame")
	}
}

// RSV1 from a server that did not negotiate the extension, or on a
// continuation; fragments out of order; a fragmented control frame: each
// ends the client with an error rather than garbage messages.
func TestClientRejectsStrayFrames(t *testing.T) {
	text := func(fin bool, rsv byte, p string) ws.Frame {
		return ws.Frame{Header: ws.Header{Fin: fin, Rsv: rsv, OpCode: ws.OpText, Length: int64(len(p))}, Payload: []byte(p)}
	}
	cont := func(fin bool, rsv byte, p string) ws.Frame {
		return ws.Frame{Header: ws.Header{Fin: fin, Rsv: rsv, OpCode: ws.OpContinuation, Length: int64(len(p))}, Payload: []byte(p)}
	}
	rsv1 := ws.Rsv(true, false, false)
	negotiated := deflateAnswer("server_no_context_takeover")
	for _, tc := range []struct {
		name   string
		answer func() httphead.Option
		frames []ws.Frame
	}{
		{"not negotiated", nil, []ws.Frame{text(true, rsv1, "{}")}},
		{"RSV1 on a continuation", negotiated, []ws.Frame{text(false, 0, "{"), cont(true, rsv1, "}")}},
		{"RSV2", negotiated, []ws.Frame{text(true, ws.Rsv(false, true, false), "{}")}},
		{"continuation without a message", negotiated, []ws.Frame{cont(true, 0, "{}")}},
		{"a message inside a message", negotiated, []ws.Frame{text(false, 0, "{"), text(true, 0, "{}")}},
		{"fragmented ping", negotiated, []ws.Frame{{Header: ws.Header{OpCode: ws.OpPing}}}},
		{"reserved opcode", negotiated, []ws.Frame{{Header: ws.Header{Fin: true, OpCode: 0x3}}}},
		{"reserved control opcode", negotiated, []ws.Frame{{Header: ws.Header{Fin: true, OpCode: 0xb}}}},
		{"ping over 125 bytes", negotiated, []ws.Frame{ws.NewPingFrame(make([]byte, 126))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := stubServer(t, tc.answer, func(conn net.Conn) {
				for _, f := range tc.frames {
					_ = ws.WriteFrame(conn, f)
				}
			})
			c, err := fxtest.DialCompressed(context.Background(), url, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Abort()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			if _, err := c.ExpectAny(ctx); err == nil || !strings.Contains(err.Error(), "fxtest:") {
				t.Fatalf("err = %v, want the client's own error", err)
			}
		})
	}
}

// Messages in fragments, plain and compressed, with pings between the
// fragments, arrive whole and in order.
func TestClientAssemblesFragmentedMessages(t *testing.T) {
	long := `{"event":"long","data":"` + strings.Repeat("fragment ", 2000) + `"}`
	z := wsdeflate.Compress([]byte(long))
	url := stubServer(t, deflateAnswer("server_no_context_takeover"), func(conn net.Conn) {
		frag := func(op ws.OpCode, fin bool, rsv byte, p []byte) ws.Frame {
			return ws.Frame{Header: ws.Header{Fin: fin, Rsv: rsv, OpCode: op, Length: int64(len(p))}, Payload: p}
		}
		for _, f := range []ws.Frame{
			frag(ws.OpText, false, 0, []byte(`{"event":"`)),
			ws.NewPingFrame([]byte("between")),
			frag(ws.OpContinuation, false, 0, []byte(`plain`)),
			frag(ws.OpContinuation, true, 0, []byte(`","data":1}`)),
			frag(ws.OpText, false, ws.Rsv(true, false, false), z[:len(z)/2]),
			ws.NewPingFrame(nil),
			frag(ws.OpContinuation, true, 0, z[len(z)/2:]),
			ws.NewTextFrame([]byte(`{"event":"after"}`)),
		} {
			if err := ws.WriteFrame(conn, f); err != nil {
				return
			}
		}
	})
	c, err := fxtest.DialCompressed(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Abort()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, want := range []string{"plain", "long", "after"} {
		m, err := c.ExpectAny(ctx, "plain", "long", "after")
		if err != nil {
			t.Fatalf("waiting for %q: %v", want, err)
		}
		if m.Event != want {
			t.Fatalf("got event %q (data %.40s), want %q", m.Event, m.Data, want)
		}
		if want == "long" && string(m.Data) != `"`+strings.Repeat("fragment ", 2000)+`"` {
			t.Fatalf("long message data differs (%d bytes)", len(m.Data))
		}
	}
	if got := c.Pings(); got != 2 {
		t.Fatalf("pings = %d, want the 2 sent between fragments", got)
	}
}

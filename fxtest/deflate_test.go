package fxtest_test

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/fxws/websocket/fxtest"
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
// fragment, ends the client with an error rather than garbage messages.
func TestClientRejectsStrayRSV1(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer func() httphead.Option
		frame  ws.Frame
	}{
		{"not negotiated", nil, ws.Frame{Header: ws.Header{Fin: true, Rsv: ws.Rsv(true, false, false), OpCode: ws.OpText, Length: 2}, Payload: []byte("{}")}},
		{"compressed fragment", deflateAnswer("server_no_context_takeover"), ws.Frame{Header: ws.Header{Rsv: ws.Rsv(true, false, false), OpCode: ws.OpText, Length: 2}, Payload: []byte("{}")}},
		{"RSV2", deflateAnswer("server_no_context_takeover"), ws.Frame{Header: ws.Header{Fin: true, Rsv: ws.Rsv(false, true, false), OpCode: ws.OpText, Length: 2}, Payload: []byte("{}")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := stubServer(t, tc.answer, func(conn net.Conn) {
				_ = ws.WriteFrame(conn, tc.frame)
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

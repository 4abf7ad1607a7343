//go:build linux

package helper_test

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/protocol"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// A client that stops reading while another instance streams it a
// position as protocol.Latest, with a note now and then: once it reads
// again it gets every note, in order, and of the positions only some, in
// order, ending with the newest, not the backlog of every one (asked for
// by dashboard, game and collaborative-editing trials: cursors, gauges).
func TestLatestCatchesASlowReaderUpOnTheNewestValue(t *testing.T) {
	hub := broker.NewMemoryHub()
	a := newKit(t, rawSocket, func(c *helper.Config) {
		c.Broker = hub.NewBroker()
		c.Options.SendBufferSize = 4096
	})
	b := newKit(t, rawSocket, func(c *helper.Config) { c.Broker = hub.NewBroker() })
	ctx := context.Background()

	conn, id := dialSlowReader(t, a.url)
	defer conn.Close()

	const n = 2000
	pad := strings.Repeat("x", 1000)
	type pos struct {
		N   int
		Pad string
	}
	for i := range n {
		if err := b.h.Send(ctx, id, "pos", protocol.Latest{Key: "pos", Data: pos{i, pad}}); err != nil {
			t.Fatal(err)
		}
		if i%100 == 99 {
			if err := b.h.Send(ctx, id, "note", i); err != nil {
				t.Fatal(err)
			}
		}
	}
	eventually(t, "positions superseded on the slow client's instance", func() bool { return a.h.Stats().Superseded > 0 })

	last, notes, positions := -1, 0, 0
	for last != n-1 || notes != n/100 {
		m := readMessage(t, conn)
		var v int
		switch m.Event {
		case "pos":
			var p pos
			_ = json.Unmarshal(m.Data, &p)
			if p.N <= last {
				t.Fatalf("position %d after %d", p.N, last)
			}
			last = p.N
			positions++
		case "note":
			_ = json.Unmarshal(m.Data, &v)
			if want := notes*100 + 99; v != want {
				t.Fatalf("note %d, want %d: notes must all arrive, in order", v, want)
			}
			notes++
		}
	}
	if positions >= n {
		t.Fatalf("the slow reader got all %d positions: none superseded", positions)
	}
	if s := a.h.Stats(); int(s.Superseded)+positions != n {
		t.Fatalf("%d positions received and %d superseded, want %d in all", positions, s.Superseded, n)
	}
	t.Logf("%d of %d positions reached the slow reader", positions, n)
}

// readMessage reads the next data message from a raw client connection.
func readMessage(t *testing.T, conn net.Conn) protocol.Message {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		p, op, err := wsutil.ReadServerData(conn)
		if err != nil {
			t.Fatal(err)
		}
		if op != ws.OpText {
			continue
		}
		var m protocol.Message
		if err := json.Unmarshal(p, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
}

// dialSlowReader connects and authenticates a client with a small receive
// buffer (4 KiB), so that what it does not read waits in the server's
// queue, not in the kernels', and returns its connection and client id.
func dialSlowReader(t *testing.T, url string) (net.Conn, string) {
	t.Helper()
	dialer := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var err error
		_ = rc.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return err
	}}
	conn, _, _, err := ws.Dialer{NetDial: dialer.DialContext}.Dial(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	if err := wsutil.WriteClientText(conn, []byte(`{"event":"authenticate","data":{"token":"valid-slow"}}`)); err != nil {
		conn.Close()
		t.Fatal(err)
	}
	for {
		m := readMessage(t, conn)
		if m.Event == protocol.EventConnected {
			var cd protocol.ConnectedData
			_ = json.Unmarshal(m.Data, &cd)
			return conn, cd.ID
		}
	}
}

//go:build linux

package helper_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/protocol"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// A client that stops reading while 200 prices (one protocol.Latest key
// each, about 10 KB for all their newest values) stream to it, with a small
// SendBufferSize and a BackpressureLimit sized for them (latest values may
// take the queue to twice it): once it reads again it ends with the newest
// value of every key. A Latest whose key had nothing queued (its previous
// value already went to the socket) was dropped at the limit, and every
// later one of the key the same way until the client read: stale for good
// (found in a ticker trial). With a limit too small for the keys, what is
// dropped is counted as DroppedLatest.
func TestLatestNewestValueSurvivesBackpressureLimit(t *testing.T) {
	t.Run("sized", func(t *testing.T) { latestAfterStandstill(t, 8192, true) })
	t.Run("too small", func(t *testing.T) { latestAfterStandstill(t, 2048, false) })
}

func latestAfterStandstill(t *testing.T, limit int, sized bool) {
	hub := broker.NewMemoryHub()
	a := newKit(t, rawSocket, func(c *helper.Config) {
		c.Broker = hub.NewBroker()
		c.Options.SendBufferSize = 4096
		c.Options.BackpressureLimit = limit
	})
	b := newKit(t, rawSocket, func(c *helper.Config) { c.Broker = hub.NewBroker() })
	ctx := context.Background()

	conn, id := dialSlowReader(t, a.url)
	defer conn.Close()

	type price struct {
		Sym string
		Seq int
	}
	const keys, rounds = 200, 20
	for seq := 1; seq <= rounds; seq++ { // the client reads nothing meanwhile
		for k := range keys {
			sym := fmt.Sprintf("S%04d", k)
			if err := b.h.Send(ctx, id, "px", protocol.Latest{Key: sym, Data: price{sym, seq}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	eventually(t, "the sends reached the slow client's instance", func() bool {
		s := a.h.Stats()
		return s.Delivered+s.DroppedBackpressure >= keys*rounds
	})

	last := map[string]int{}
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		p, op, err := wsutil.ReadServerData(conn)
		if err != nil {
			break // nothing more comes
		}
		if op != ws.OpText {
			continue
		}
		var m struct{ Data price }
		if json.Unmarshal(p, &m) == nil {
			last[m.Data.Sym] = m.Data.Seq
		}
		if len(last) == keys {
			done := true
			for _, s := range last {
				done = done && s == rounds
			}
			if done {
				break
			}
		}
	}
	stale := 0
	for k := range keys {
		if last[fmt.Sprintf("S%04d", k)] != rounds {
			stale++
		}
	}
	if !sized {
		if s := a.h.Stats(); s.DroppedLatest == 0 || s.DroppedLatest != s.DroppedBackpressure {
			t.Fatalf("a limit too small for the keys: DroppedLatest %d, DroppedBackpressure %d (%d keys stale), want the drops counted as latest ones", s.DroppedLatest, s.DroppedBackpressure, stale)
		}
		return
	}
	if stale > 0 {
		s := a.h.Stats()
		t.Fatalf("%d of %d keys never got their newest value (e.g. S0000 ended at %d of %d); Delivered=%d Superseded=%d DroppedBackpressure=%d",
			stale, keys, last["S0000"], rounds, s.Delivered, s.Superseded, s.DroppedBackpressure)
	}
}

// With the default BackpressureLimit (1 MiB) and the small
// SendBufferSize the README pairs with protocol.Latest: a client on a slow link (a small receive buffer) gets a
// price as protocol.Latest, then a burst of ordinary messages (trade prints,
// headlines) that fills its queue, then the final price of the same key.
// The final price must reach it once it reads again: a Latest "takes the
// place of the one still queued ... in its turn" and a client that falls
// behind "catches up on the newest state". The final price was dropped at
// the limit because the key's previous value was already on the socket,
// and nothing ever sent it again (found in a ticker trial).
func TestLatestFinalValueNotLostBehindABurst(t *testing.T) {
	a := newKit(t, rawSocket, func(c *helper.Config) { c.Options.SendBufferSize = 4096 })
	conn, id := dialSlowReader(t, a.url)
	defer conn.Close()
	// A quote as a trading UI gets it; a little larger than a headline.
	type quote struct {
		Sym          string
		Seq          int
		Bid, Ask     float64
		Venue, Extra string
	}
	q := func(seq int) quote {
		return quote{"S0001", seq, 101.25, 101.27, "XNAS", "0123456789012345678901234567890123456789"}
	}
	if _, err := a.h.SendToClient(id, "px", protocol.Latest{Key: "S0001", Data: q(1)}); err != nil {
		t.Fatal(err)
	}
	news := make([]byte, 60)
	for i := range news {
		news[i] = 'n'
	}
	for range 30000 { // about 2.4 MiB: past the kernel's buffers and the 1 MiB limit
		if _, err := a.h.SendToClient(id, "news", string(news)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.h.SendToClient(id, "px", protocol.Latest{Key: "S0001", Data: q(2)}); err != nil {
		t.Fatal(err)
	}
	last := 0
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	for last != 2 {
		p, op, err := wsutil.ReadServerData(conn)
		if err != nil {
			break
		}
		var m protocol.Message
		if op == ws.OpText && json.Unmarshal(p, &m) == nil && m.Event == "px" {
			var got quote
			_ = json.Unmarshal(m.Data, &got)
			last = got.Seq
		}
	}
	if last != 2 {
		s := a.h.Stats()
		t.Fatalf("the client ended on price %d, not the final 2; Delivered=%d Superseded=%d DroppedBackpressure=%d", last, s.Delivered, s.Superseded, s.DroppedBackpressure)
	}
}

package helper_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/protocol"
)

// The encrypted queue under a mix of broadcasts and per-client envelopes,
// some clients leaving mid-stream: each remaining client gets every message
// once, in order (from a review).
func TestEncQueueStress(t *testing.T) {
	const limit, clients, msgs = 3, 12, 300
	hub := broker.NewMemoryHub()
	k := newKit(t, rawSocket, func(c *helper.Config) {
		c.Broker = hub.NewBroker()
		requireEncryption(c, limit)
		c.Handlers.OutboundTransformer = func(ctx context.Context, req helper.OutboundRequest) (*protocol.Message, error) {
			if rand.IntN(10) == 0 {
				time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
			}
			b, _ := json.Marshal(map[string]any{"seq": req.Data})
			return &protocol.Message{Event: protocol.EventEncrypted, Data: b}, nil
		}
	})
	var cs []*fxtest.Client
	var ids []string
	for i := 0; i < clients; i++ {
		c, cd := k.login("e" + strconv.Itoa(i))
		cs = append(cs, c)
		ids = append(ids, cd.ID)
	}
	emitter := hub.NewBroker()
	if err := emitter.Start(context.Background(), func(string, []byte) {}); err != nil {
		t.Fatal(err)
	}
	defer emitter.Close()
	leavers := map[int]bool{1: true, 5: true}
	for seq := 0; seq < msgs; seq++ {
		if seq == msgs/2 {
			for i := range leavers {
				_ = cs[i].Abort()
			}
		}
		var payload, ch string
		if seq%3 == 0 {
			i := seq % clients
			payload = `{"serverId":"emitter","type":"client","target":"` + ids[i] + `","event":"news","data":` + strconv.Itoa(seq) + `}`
			ch = protocol.ClientChannel(ids[i])
		} else {
			payload = `{"serverId":"emitter","type":"broadcast","event":"news","data":` + strconv.Itoa(seq) + `}`
			ch = protocol.ChannelBroadcast
		}
		if err := emitter.Publish(context.Background(), ch, []byte(payload)); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range cs {
		if leavers[i] {
			continue
		}
		for seq := 0; seq < msgs; seq++ {
			if seq%3 == 0 && seq%clients != i {
				continue
			}
			m := expectEvent(t, c, protocol.EventEncrypted)
			var d struct{ Seq int }
			if err := json.Unmarshal(m.Data, &d); err != nil || d.Seq != seq {
				t.Fatalf("client %d: message %d arrived as %s", i, seq, m.Data)
			}
		}
	}
}

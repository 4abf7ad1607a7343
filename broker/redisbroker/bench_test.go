package redisbroker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/fxws/websocket/broker/redisbroker"
	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/internal/redisinstance"
	"github.com/fxws/websocket/internal/redistest"
	"github.com/fxws/websocket/protocol"
	"go.uber.org/zap"
)

// BenchmarkCrossInstance measures room delivery across a fleet of 4
// instances on one Redis: 48 rooms spread over instances 1-3 (one member
// each), instance 0 publishing (like a worker or an API node). Each
// iteration sends to one room and waits for its member, so ns/op is the
// round trip; it reports the p50/p99 latency from send to receipt and the
// Redis messages each instance read per message sent (recv/msg/node: the
// mean over instances; recv/msg/max: the busiest one).
//
//	go test -run '^$' -bench CrossInstance -benchtime 2000x ./broker/redisbroker/
func BenchmarkCrossInstance(b *testing.B) {
	for _, mode := range []redisbroker.Mode{redisbroker.ModeAudience, redisbroker.ModePattern} {
		b.Run(mode.String(), func(b *testing.B) { benchFleet(b, mode) })
	}
}

func benchFleet(b *testing.B, mode redisbroker.Mode) {
	srv := redistest.Start(b)
	const nodes, rooms = 4, 48
	opts := redisbroker.Options{Mode: mode, Logger: zap.NewNop()}
	fleet := make([]*redisinstance.Instance, nodes)
	for i := range fleet {
		fleet[i] = redisinstance.Start(b, srv.Client(), opts)
	}
	members := make([]*fxtest.Client, rooms)
	for r := 0; r < rooms; r++ {
		in := fleet[1+r%(nodes-1)]
		c, id := in.Connect(b, fmt.Sprintf("u%d", r))
		in.Join(b, id, fmt.Sprintf("room-%d", r))
		members[r] = c
	}
	pub := fleet[0].Helper
	ctx := context.Background()
	before := make([]uint64, nodes)
	for i, in := range fleet {
		before[i] = in.Broker.Stats().Received
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := i % rooms
		start := time.Now()
		if err := pub.Publish(ctx, protocol.TypeRoom, fmt.Sprintf("room-%d", r), "tick", i); err != nil {
			b.Fatal(err)
		}
		for {
			m, err := members[r].Expect(ctx, "tick")
			if err != nil {
				b.Fatal(err)
			}
			var got int
			if json.Unmarshal(m.Data, &got) == nil && got == i {
				break
			}
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	var total, most uint64
	for i, in := range fleet {
		n := in.Broker.Stats().Received - before[i]
		total += n
		most = max(most, n)
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(float64(total)/float64(b.N)/nodes, "recv/msg/node")
	b.ReportMetric(float64(most)/float64(b.N), "recv/msg/max")
}

package emitter_test

import (
	"context"
	"testing"
	"time"

	"github.com/fxws/websocket/broker/redisbroker"
	"github.com/fxws/websocket/emitter"
	"github.com/fxws/websocket/internal/redisinstance"
	"github.com/fxws/websocket/internal/redistest"
	"github.com/fxws/websocket/protocol"
)

// Audience counts what Publish would reach, in audience and sharded modes,
// and sends nothing; a server subscribing by pattern makes it unknown.
func TestAudienceCountsWithoutSending(t *testing.T) {
	ctx := context.Background()
	for _, sharded := range []bool{false, true} {
		name := "audience"
		mode := redisbroker.ModeAudience
		if sharded {
			name, mode = "sharded", redisbroker.ModeSharded
		}
		t.Run(name, func(t *testing.T) {
			srv := redistest.Start(t)
			a := redisinstance.Start(t, srv.Client(), redisbroker.Options{Mode: mode})
			b := redisinstance.Start(t, srv.Client(), redisbroker.Options{Mode: mode})
			ca, idA := a.Connect(t, "device-7")
			_, _ = b.Connect(t, "device-7")
			_, idC := b.Connect(t, "device-9")
			b.Join(t, idC, "floor-2")
			for _, in := range []*redisinstance.Instance{a, b} {
				if err := in.Helper.SyncSubscriptions(ctx); err != nil {
					t.Fatal(err)
				}
			}
			e, err := emitter.New(srv.Client(), emitter.Options{Sharded: sharded})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range audienceCases(idA) {
				if n, err := e.Audience(ctx, c.typ, c.target); err != nil || n != c.want {
					t.Errorf("Audience of %s %q: %d %v, want %d", c.typ, c.target, n, err, c.want)
				}
			}
			if st := e.Stats(); st.Published != 0 {
				t.Errorf("Audience published %d messages", st.Published)
			}
			// Nothing reached the client: a message sent now comes first.
			if err := e.ToClient(ctx, idA, "first", 1); err != nil {
				t.Fatal(err)
			}
			expect(t, ca, "a", "first", `1`)
			for _, bad := range []struct {
				typ    protocol.MessageType
				target string
			}{{protocol.TypeDisconnectUser, "u"}, {protocol.TypeUser, ""}} {
				if _, err := e.Audience(ctx, bad.typ, bad.target); err == nil {
					t.Errorf("Audience of %s %q: no error", bad.typ, bad.target)
				}
			}
		})
	}

	t.Run("pattern server present", func(t *testing.T) {
		srv, a, _ := audiencePair(t)
		a.Connect(t, "device-7")
		_ = redisinstance.Start(t, srv.Client(), redisbroker.Options{Mode: redisbroker.ModePattern})
		e, err := emitter.New(srv.Client(), emitter.Options{})
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			n, err := e.Audience(ctx, protocol.TypeUser, "device-7")
			if err != nil {
				t.Fatal(err)
			}
			if n == -1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Audience %d with a pattern-mode server on the Redis, want -1 (not known)", n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// audienceCase is a target and the instances holding it, in the setup of
// TestAudienceCountsWithoutSending and TestPublishCountsTheInstancesThatTookIt:
// device-7 on two instances (client idA on the first), device-9 on the
// second, in room floor-2.
type audienceCase struct {
	typ    protocol.MessageType
	target string
	want   int
}

func audienceCases(idA string) []audienceCase {
	return []audienceCase{
		{protocol.TypeUser, "device-7", 2},
		{protocol.TypeUser, "device-9", 1},
		{protocol.TypeUser, "device-404", 0},
		{protocol.TypeClient, idA, 1},
		{protocol.TypeClient, "no-such-client", 0},
		{protocol.TypeRoom, "floor-2", 1},
		{protocol.TypeRoom, "floor-9", 0},
		{protocol.TypeBroadcast, "ignored", 2},
	}
}

package emitter_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/fxws/websocket/broker/redisbroker"
	"github.com/fxws/websocket/emitter"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/internal/redisinstance"
	"github.com/fxws/websocket/internal/redistest"
)

// An emitter refuses a send the servers would drop as too large, and a
// server drops one over its limit that an emitter without that limit
// published, over real Redis, while what follows is delivered.
func TestEnvelopeOverMaxEnvelopeLength(t *testing.T) {
	const limit = 8192
	srv := redistest.Start(t)
	ctx := context.Background()
	in := redisinstance.Start(t, srv.Client(), redisbroker.Options{}, func(c *helper.Config) {
		c.Options.MaxEnvelopeLength = limit
	})
	c, _ := in.Connect(t, "alice")

	capped, err := emitter.New(srv.Client(), emitter.Options{MaxEnvelopeLength: limit})
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", limit)
	if err := capped.ToUser(ctx, "alice", "big", big); !errors.Is(err, emitter.ErrEnvelopeTooLarge) ||
		!strings.Contains(err.Error(), "emitter: ToUser:") || !strings.Contains(err.Error(), "the limit is 8192") {
		t.Fatalf("ToUser over the limit: %v, want ErrEnvelopeTooLarge naming the method and the limit", err)
	}
	if s := capped.Stats(); s.Published != 0 || s.PublishErrors != 0 {
		t.Fatalf("refused send counted: %+v", s)
	}
	def, err := emitter.New(srv.Client(), emitter.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := def.Broadcast(ctx, "huge", strings.Repeat("x", 16<<20)); !errors.Is(err, emitter.ErrEnvelopeTooLarge) {
		t.Fatalf("16 MiB broadcast with the default limit: %v, want ErrEnvelopeTooLarge", err)
	}

	unlimited, err := emitter.New(srv.Client(), emitter.Options{MaxEnvelopeLength: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := unlimited.ToUser(ctx, "alice", "big", big); err != nil {
		t.Fatal(err)
	}
	if err := unlimited.ToUser(ctx, "alice", "small", "ok"); err != nil {
		t.Fatal(err)
	}
	expect(t, c, "alice", "small", `"ok"`)
	for _, m := range c.Messages() {
		if m.Event == "big" {
			t.Fatal("the server delivered an envelope over its MaxEnvelopeLength")
		}
	}
	if s := in.Helper.Stats(); s.BadEnvelopes != 1 {
		t.Fatalf("server BadEnvelopes = %d, want 1", s.BadEnvelopes)
	}
}

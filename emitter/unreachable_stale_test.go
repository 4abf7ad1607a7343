package emitter_test

import (
	"context"
	"testing"
	"time"

	"github.com/fxws/websocket/emitter"
	"github.com/fxws/websocket/internal/redistest"
)

// Stats().Unreachable turns false a second after the last failed send
// when nothing is sent: only a send cleared it, so an emitter whose
// readiness gated the traffic that would make it send stayed unready
// for good once Redis was back (found in review).
func TestUnreachableTurnsFalseWithoutSends(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	rc := srv.Client()
	defer rc.Close()
	e, err := emitter.New(rc, emitter.Options{PublishTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	if err := e.ToRoom(ctx, "r", "ev", 1); err == nil {
		t.Fatal("send with Redis gone succeeded")
	}
	if !e.Stats().Unreachable {
		t.Fatal("setup: not marked unreachable")
	}
	srv.Restart()
	if err := rc.Ping(ctx).Err(); err != nil {
		t.Fatalf("setup: Redis not back: %v", err)
	}
	time.Sleep(2 * time.Second) // eight probe periods, no sends
	if e.Stats().Unreachable {
		t.Fatal("Stats().Unreachable still true 2 s after Redis answered again (no send was made to clear it)")
	}
}

package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/fxws/websocket/broker/redisbroker"
	"github.com/fxws/websocket/internal/redistest"
	"go.uber.org/fx"
	"go.uber.org/goleak"
	"go.uber.org/zap"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestWorkerReachesClients runs one job against a server instance on a real
// Redis: the room member sees progress up to 100 %, the user gets job-done.
func TestWorkerReachesClients(t *testing.T) {
	srv := redistest.Start(t)
	in := redistest.StartInstance(t, srv.Client(), redisbroker.Options{})
	c, id := in.Connect(t, "owner")
	in.Join(t, id, "public-jobs")
	t.Setenv("REDIS_URL", srv.URL())
	t.Setenv("JOB_USER", "owner")
	t.Setenv("JOB_STEP_MS", "1")
	t.Setenv("JOBS", "1")
	a := app(fx.Supply(zap.NewNop()), fx.NopLogger)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	last := -1
	for last < 100 {
		m, err := c.Expect(ctx, "job-progress")
		if err != nil {
			t.Fatal(err)
		}
		var p struct{ Pct int }
		if err := json.Unmarshal(m.Data, &p); err != nil || p.Pct <= last {
			t.Fatalf("progress %s after %d", m.Data, last)
		}
		last = p.Pct
	}
	if _, err := c.Expect(ctx, "job-done"); err != nil {
		t.Fatal(err)
	}
	<-a.Done() // the worker stops itself after JOBS jobs
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

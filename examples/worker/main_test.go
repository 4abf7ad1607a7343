package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	websocket "github.com/fxws/websocket"
	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
	"go.uber.org/fx"
	"go.uber.org/goleak"
	"go.uber.org/zap"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// userToken accepts {"token": <user id>}.
func userToken(_ context.Context, req helper.AuthenticateRequest) (*helper.AuthResult, error) {
	var d struct{ Token string }
	if json.Unmarshal(req.Data, &d) != nil || d.Token == "" {
		return nil, nil
	}
	return &helper.AuthResult{UserID: d.Token}, nil
}

// TestWorkerReachesClients runs one job against a server on a real Redis
// (fxtest.StartRedis): the room member sees progress up to 100 %, the user
// gets job-done.
func TestWorkerReachesClients(t *testing.T) {
	r := fxtest.StartRedis(t)
	srv := fxtest.StartServer(t, fxtest.WithRedis(r.Addr()), websocket.WithAuthenticate(userToken),
		// Without a validate-room handler every join is refused.
		websocket.WithValidateRoom(func(_ context.Context, req helper.ValidateRoomRequest) ([]string, error) { return req.Rooms, nil }))
	c, id := srv.Connect(t, map[string]string{"token": "owner"})
	if err := c.Join("public-jobs"); err != nil {
		t.Fatal(err)
	}
	if err := srv.WaitJoined(context.Background(), id, "public-jobs"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("REDIS_URL", r.URL())
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

// Command worker is a process without sockets that pushes job progress to
// WebSocket clients through Redis, with emitter.Module: every connected
// client in the room "public-jobs" (on any server instance, ours or Ignis)
// gets `job-progress` events, and the job's owner gets `job-done` on every
// one of their connections.
//
//	REDIS_URL=redis://127.0.0.1:6379 go run ./examples/worker
//
// Environment: REDIS_URL (default redis://127.0.0.1:6379), JOB_ROOM
// (default public-jobs), JOB_USER (default demo), JOB_STEP_MS (default
// 500), JOBS (how many jobs to run; default 0, run until stopped).
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/fxws/websocket/emitter"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"
	"go.uber.org/zap"
)

func env(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

func newRedis() (redis.UniversalClient, error) {
	opt, err := redis.ParseURL(env("REDIS_URL", "redis://127.0.0.1:6379"))
	if err != nil {
		return nil, fmt.Errorf("worker: REDIS_URL: %w", err)
	}
	return redis.NewClient(opt), nil
}

// jobs runs the jobs in the background for the app's lifetime.
func jobs(lc fx.Lifecycle, sd fx.Shutdowner, e *emitter.WebSocketEmitter, rdb redis.UniversalClient, log *zap.Logger) {
	room, user := env("JOB_ROOM", "public-jobs"), env("JOB_USER", "demo")
	step, _ := strconv.Atoi(env("JOB_STEP_MS", "500"))
	count, _ := strconv.Atoi(env("JOBS", "0"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			go func() {
				defer close(done)
				for n := 1; count == 0 || n <= count; n++ {
					if !runJob(ctx, e, log, fmt.Sprintf("job-%d", n), room, user, time.Duration(step)*time.Millisecond) {
						return
					}
				}
				_ = sd.Shutdown()
			}()
			return nil
		},
		OnStop: func(context.Context) error {
			cancel()
			<-done
			return rdb.Close()
		},
	})
}

// runJob reports 0..100 % in steps; false when the worker is stopping.
func runJob(ctx context.Context, e *emitter.WebSocketEmitter, log *zap.Logger, id, room, user string, step time.Duration) bool {
	for pct := 0; pct <= 100; pct += 10 {
		if err := e.ToRoom(ctx, room, "job-progress", map[string]any{"job": id, "pct": pct}); err != nil {
			// Redis is down or slow: the job goes on, the update is lost.
			log.Warn("progress not published", zap.String("job", id), zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(step):
		}
	}
	if err := e.ToUser(ctx, user, "job-done", map[string]any{"job": id}); err != nil {
		log.Warn("completion not published", zap.String("job", id), zap.Error(err))
	}
	log.Info("job done", zap.String("job", id))
	return true
}

// app wires the worker; extra options let tests replace the logger.
func app(extra ...fx.Option) *fx.App {
	return fx.New(append([]fx.Option{
		emitter.Module,
		fx.Provide(fx.Annotate(newRedis, fx.ResultTags(emitter.RedisConnectionKey))),
		fx.Invoke(fx.Annotate(jobs, fx.ParamTags(``, ``, ``, emitter.RedisConnectionKey))),
	}, extra...)...)
}

func main() {
	app(fx.Provide(zap.NewDevelopment)).Run()
}

package emitter_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fxws/websocket/emitter"
	"github.com/fxws/websocket/internal/redistest"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"
)

// Start gives up at once on failures no wait changes (found in an API
// review: it waited out the whole ReadyTimeout for them). The ready
// timeout here is an hour, so an error that is not the failure itself
// means Start waited.
func TestStartFailsAtOnceOnWhatWaitingCannotChange(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	closed := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	_ = closed.Close()
	e, err := emitter.New(closed, emitter.Options{ReadyTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx); !errors.Is(err, redis.ErrClosed) || ctx.Err() != nil {
		t.Fatalf("Start on a closed client: %v (context: %v), want redis.ErrClosed at once", err, ctx.Err())
	}

	r := redistest.Start(t)
	admin := redis.NewClient(&redis.Options{Addr: r.Addr()})
	if err := admin.ConfigSet(ctx, "requirepass", "secret").Err(); err != nil {
		t.Fatal(err)
	}
	_ = admin.Close()
	wrong := redis.NewClient(&redis.Options{Addr: r.Addr(), Password: "wrong"})
	defer wrong.Close()
	e, err = emitter.New(wrong, emitter.Options{ReadyTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var answered redis.Error
	if err := e.Start(ctx); !errors.As(err, &answered) || ctx.Err() != nil {
		t.Fatalf("Start with a wrong password: %v (context: %v), want Redis's answer at once", err, ctx.Err())
	}
}

func TestOptionsValidated(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	_, err := emitter.New(rdb, emitter.Options{PublishTimeout: -time.Second, ReadyTimeout: -time.Second})
	if err == nil || !strings.Contains(err.Error(), "PublishTimeout must not be negative") || !strings.Contains(err.Error(), "ReadyTimeout must not be negative") {
		t.Fatalf("negative timeouts: %v", err)
	}
}

// Module builds the emitter in fx.New, so that a missing client fails
// there, as its doc says, not at the first use; and options supplied
// without their name fail too rather than being ignored (both found in an
// API review).
func TestModuleMisconfigurationsFailNew(t *testing.T) {
	app := fx.New(fx.NopLogger, emitter.Module)
	if err := app.Err(); err == nil || !strings.Contains(err.Error(), emitter.RedisConnectionKey) {
		t.Fatalf("fx.New(emitter.Module) without a Redis client: %v", err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	app = fx.New(fx.NopLogger, emitter.Module,
		emitter.WithRedisConnection(rdb),
		fx.Supply(emitter.Options{Sharded: true}),
	)
	if err := app.Err(); err == nil || !strings.Contains(err.Error(), "emitter.WithOptions") {
		t.Fatalf("unnamed emitter.Options: %v", err)
	}
}

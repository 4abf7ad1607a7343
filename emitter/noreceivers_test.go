package emitter_test

import (
	"context"
	"testing"
	"time"

	"github.com/fxws/websocket/broker/redisbroker"
	"github.com/fxws/websocket/emitter"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/internal/redistest"
)

// NoReceivers means what its doc says with the servers in ModeAudience
// (a user connected nowhere and an empty room are counted), and nothing
// with ModePattern, whose PSUBSCRIBE ws:user:* hears every target (found
// in review: the README claimed it for any single Redis).
func TestNoReceiversPerServerMode(t *testing.T) {
	srv := redistest.Start(t)
	for _, mode := range []redisbroker.Mode{redisbroker.ModeAudience, redisbroker.ModePattern} {
		t.Run(mode.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			rc := srv.Client()
			defer rc.Close()
			b := redisbroker.New(rc, redisbroker.Options{Mode: mode})
			h, err := helper.New(helper.Config{Broker: b, Handlers: helper.Handlers{
				Authenticate: func(context.Context, helper.AuthenticateRequest) (*helper.AuthResult, error) { return nil, nil },
			}})
			if err != nil {
				t.Fatal(err)
			}
			if err := h.Start(ctx); err != nil {
				t.Fatal(err)
			}
			defer h.Shutdown(ctx)
			ec := srv.Client()
			defer ec.Close()
			e, err := emitter.New(ec, emitter.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.ToUser(ctx, "connected-nowhere", "note", 1); err != nil {
				t.Fatal(err)
			}
			if err := e.ToRoom(ctx, "empty-room", "note", 1); err != nil {
				t.Fatal(err)
			}
			if err := e.Broadcast(ctx, "note", 1); err != nil {
				t.Fatal(err)
			}
			want := uint64(2)
			if mode == redisbroker.ModePattern {
				want = 0
			}
			if s := e.Stats(); s.NoReceivers != want {
				t.Fatalf("servers in %v: Stats = %+v; want NoReceivers %d", mode, s, want)
			}
		})
	}
}

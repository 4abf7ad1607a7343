// Package redisinstance runs server instances on a Redis broker for the
// cross-instance tests: a helper served by an httptest server, with a
// client kit to connect and join. (Apart from redistest, which fxtest
// builds on, because it uses fxtest's client.)
package redisinstance

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fxws/websocket/broker/redisbroker"
	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap/zaptest"
)

// Instance is one server instance for cross-instance tests: a helper on its
// own Redis broker, served by an httptest server. Several instances on the
// same Redis act as a fleet behind a load balancer.
type Instance struct {
	Helper *helper.WebSocketServerHelper
	Broker *redisbroker.Broker
	HTTP   *httptest.Server
	// URL is the WebSocket URL (ws://…/ws).
	URL string
}

// Start starts a helper whose broker uses client with opts. Its
// authenticate handler accepts {"token":"valid-<userId>"} (empty userId:
// anonymous) and the validate-room handler allows every room. configure
// may adjust the helper's config. It shuts down when the test ends.
func Start(tb testing.TB, client redis.UniversalClient, opts redisbroker.Options, configure ...func(*helper.Config)) *Instance {
	tb.Helper()
	if opts.Logger == nil {
		opts.Logger = zaptest.NewLogger(tb)
	}
	b := redisbroker.New(client, opts)
	cfg := helper.Config{
		Options: helper.Options{AuthTimeout: 5 * time.Second},
		Handlers: helper.Handlers{
			Authenticate: func(_ context.Context, req helper.AuthenticateRequest) (*helper.AuthResult, error) {
				var d struct{ Token string }
				_ = json.Unmarshal(req.Data, &d)
				if u, ok := strings.CutPrefix(d.Token, "valid-"); ok {
					return &helper.AuthResult{UserID: u}, nil
				}
				return nil, nil
			},
			ValidateRoom: func(_ context.Context, req helper.ValidateRoomRequest) ([]string, error) {
				return req.Rooms, nil
			},
		},
		Broker: b,
		Logger: opts.Logger,
	}
	for _, f := range configure {
		f(&cfg)
	}
	h, err := helper.New(cfg)
	if err != nil {
		tb.Fatalf("redistest: helper: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Start(ctx); err != nil {
		tb.Fatalf("redistest: start helper: %v", err)
	}
	srv := httptest.NewServer(h)
	in := &Instance{Helper: h, Broker: b, HTTP: srv, URL: "ws" + strings.TrimPrefix(srv.URL, "http") + h.Path()}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			tb.Errorf("redistest: shutdown: %v", err)
		}
		srv.Close()
	})
	return in
}

// Connect dials the instance and authenticates as userID; it returns the
// client and its id once `connected` has arrived (by then the instance
// listens on the client's and the user's channels).
func (in *Instance) Connect(tb testing.TB, userID string) (*fxtest.Client, string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := fxtest.Dial(ctx, in.URL)
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	tb.Cleanup(func() { _ = c.Abort() })
	cd, err := c.Authenticate(ctx, map[string]string{"token": "valid-" + userID})
	if err != nil {
		tb.Fatalf("redistest: authenticate: %v", err)
	}
	return c, cd.ID
}

// Join puts a client in room server-side and waits until the instance's
// broker has confirmed the subscriptions it needs (SyncSubscriptions).
func (in *Instance) Join(tb testing.TB, clientID, room string) {
	tb.Helper()
	if !in.Helper.JoinRoom(clientID, room) {
		tb.Fatalf("redistest: join %s to %s failed", clientID, room)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := in.Helper.SyncSubscriptions(ctx); err != nil {
		tb.Fatalf("redistest: room %s never subscribed: %v", room, err)
	}
}

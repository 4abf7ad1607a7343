package fxtest_test

import (
	"context"
	"io"
	"os"
	"testing"

	websocket "github.com/fxws/websocket"
	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
	"go.uber.org/fx"
)

// Start's doc: "fx's own event log is off unless opts set fx.WithLogger".
// From a collaborative-editing trial: an app that failed to build (here the
// dependency cycle the README warns of: a handler's constructor that needs
// a service that takes the helper) had fx's whole event log printed to
// stderr anyway, since no logger can be built then and fx falls back to
// its console log.
func TestStartQuietWhenTheAppFailsToBuild(t *testing.T) {
	type docs struct{ h *helper.WebSocketServerHelper }
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := os.Stderr
	os.Stderr = w
	_, startErr := fxtest.Start(
		websocket.WithAuthenticate(func(context.Context, helper.AuthenticateRequest) (*helper.AuthResult, error) { return nil, nil }),
		fx.Provide(func(h *helper.WebSocketServerHelper) *docs { return &docs{h} }),
		fx.Provide(fx.Annotate(func(*docs) helper.MessageFunc {
			return func(context.Context, helper.MessageRequest) error { return nil }
		}, fx.ResultTags(websocket.MessageHandlerKey))),
	)
	os.Stderr = stderr
	w.Close()
	out, _ := io.ReadAll(r)
	if startErr == nil {
		t.Fatal("the app with a cycle started")
	}
	if len(out) > 0 {
		t.Errorf("Start printed %d bytes of fx's event log to stderr for an app that failed to build; first lines:\n%.300s", len(out), out)
	}
}

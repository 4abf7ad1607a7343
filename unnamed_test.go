package websocket_test

import (
	"context"
	"testing"

	websocket "github.com/fxws/websocket"
	"github.com/fxws/websocket/helper"
	"go.uber.org/fx"
)

// An app may keep an unnamed handler of its own next to the one it binds
// under the module's key (here: provide it, then alias it under the key).
// A check that failed the build on any unnamed handler in the graph broke
// this, and made the app's unnamed constructors run whether anything
// needed them or not (a cycle, for one that needs the helper); it was
// reverted after review.
func TestUnnamedHandlerAlongsideTheNamedOneBuilds(t *testing.T) {
	newHandler := func() helper.MessageFunc {
		return func(context.Context, helper.MessageRequest) error { return nil }
	}
	alias := func(f helper.MessageFunc) helper.MessageFunc { return f }
	app := fx.New(fx.NopLogger, websocket.Module, websocket.WithAuthenticate(auth),
		fx.Provide(newHandler), // the app's own, unnamed
		fx.Provide(fx.Annotate(alias, fx.ResultTags(websocket.MessageHandlerKey))))
	if err := app.Err(); err != nil {
		t.Fatalf("an app binding its handler under the module's key (and keeping the unnamed one for itself) fails to build: %v", err)
	}
}

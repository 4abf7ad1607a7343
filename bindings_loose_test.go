package websocket_test

import (
	"context"
	"strings"
	"testing"

	websocket "github.com/fxws/websocket"
	"github.com/fxws/websocket/encryption"
	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/internal/redistest"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"
)

// A handler bound under its name with an unnamed func type (a method value)
// is taken: fx alone would skip it, and here an "encrypted" client would
// get plain text.
func TestLooselyTypedTransformerIsTaken(t *testing.T) {
	enc := encryption.NewECDH(encryption.Options{})
	srv, err := fxtest.Start(
		websocket.WithServerOptions(websocket.ServerOptions{Options: helper.Options{RequireEncryption: true}}),
		websocket.WithAuthenticate(auth),
		fx.Supply(
			fx.Annotated{Name: "@app/websocket/handshake-handler", Target: enc.Handshake},
			fx.Annotated{Name: "@app/websocket/client-disconnected-handler", Target: enc.ClientDisconnected},
			fx.Annotated{Name: "@app/websocket/outbound-transformer", Target: enc.Transform},
		),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	ctx := ctxT(t)
	c, err := fxtest.DialEncrypted(ctx, srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cd, err := c.Authenticate(ctx, token("e"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Helper().SendToClient(cd.ID, "secret", "card number"); err != nil {
		t.Fatal(err)
	}
	m, err := c.ExpectDecrypted(ctx, "secret")
	if err != nil || string(m.Data) != `"card number"` {
		t.Fatalf("sealed message: %s, %v", m.Data, err)
	}
}

// A *redis.Client bound under the Redis name is used, not ignored (which
// ran the server alone on the in-process broker).
func TestRedisClientBoundAsPointerIsTaken(t *testing.T) {
	r := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	srv, err := fxtest.Start(
		websocket.WithAuthenticate(auth),
		fx.Provide(fx.Annotate(func() *redis.Client { return rdb }, fx.ResultTags(websocket.RedisConnectionKey))),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	c, id := srv.Connect(t, token("a"))
	// Through Redis only: an emitter's envelope on the client's channel.
	if err := r.Client().Publish(ctxT(t), "ws:client:"+id, `{"serverId":"emitter","type":"client","target":"`+id+`","event":"via-redis","data":1}`).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Expect(ctxT(t), "via-redis"); err != nil {
		t.Fatal(err)
	}
}

// A key bound in both types is an error, not a silent pick.
func TestBindingInBothTypesFails(t *testing.T) {
	noop := func(context.Context, helper.MessageRequest) error { return nil }
	_, err := fxtest.Start(
		websocket.WithAuthenticate(auth),
		websocket.WithMessageHandler(noop),
		fx.Supply(fx.Annotated{Name: "@app/websocket/message-handler", Target: noop}),
	)
	if err == nil || !strings.Contains(err.Error(), "bound twice") {
		t.Fatalf("err = %v, want one saying the key is bound twice", err)
	}
}

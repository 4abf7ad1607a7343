package encryption_test

import (
	"context"
	"testing"

	"github.com/fxws/websocket/broker/redisbroker"
	"github.com/fxws/websocket/emitter"
	"github.com/fxws/websocket/encryption"
	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/internal/redisinstance"
	"github.com/fxws/websocket/internal/redistest"
)

// TestRedisCrossInstanceAndEmitter runs two encrypted instances on a real
// redis-server: messages published by the other instance and by the
// standalone emitter are delivered encrypted by the instance that holds the
// client.
func TestRedisCrossInstanceAndEmitter(t *testing.T) {
	srv := redistest.Start(t)
	encB := encryption.NewECDH(encryption.Options{})
	encrypted := func(enc *encryption.ECDH) func(*helper.Config) {
		return func(cfg *helper.Config) {
			cfg.Options.RequireEncryption = true
			cfg.Handlers = enc.Handlers(cfg.Handlers)
		}
	}
	a := redisinstance.Start(t, srv.Client(), redisbroker.Options{}, encrypted(encryption.NewECDH(encryption.Options{})))
	b := redisinstance.Start(t, srv.Client(), redisbroker.Options{}, encrypted(encB))
	ctx := context.Background()

	c, err := fxtest.DialEncrypted(ctx, b.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Abort()
	cd, err := c.Authenticate(ctx, map[string]string{"token": "valid-dave"})
	if err != nil {
		t.Fatal(err)
	}
	if !b.Helper.JoinRoom(cd.ID, "jobs") {
		t.Fatal("join")
	}

	// From the other instance.
	if err := a.Helper.Send(ctx, cd.ID, "direct", 1); err != nil {
		t.Fatal(err)
	}
	expectData(t, c, "direct", "1")
	if err := a.Helper.SendToUser(ctx, "dave", "dm", 2); err != nil {
		t.Fatal(err)
	}
	expectData(t, c, "dm", "2")

	// From the standalone emitter.
	e, err := emitter.New(srv.Client(), emitter.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer e.Stop(ctx)
	if err := e.ToClient(ctx, cd.ID, "job", map[string]int{"id": 7}); err != nil {
		t.Fatal(err)
	}
	if err := e.ToUser(ctx, "dave", "user", "u"); err != nil {
		t.Fatal(err)
	}
	if err := e.ToRoom(ctx, "jobs", "progress", 50); err != nil {
		t.Fatal(err)
	}
	if err := e.Broadcast(ctx, "all", true); err != nil {
		t.Fatal(err)
	}
	expectData(t, c, "job", `{"id":7}`)
	expectData(t, c, "user", `"u"`)
	expectData(t, c, "progress", "50")
	expectData(t, c, "all", "true")
	for _, m := range c.Messages() {
		if m.Event != "encrypted" {
			t.Fatalf("plain %q reached an encrypted client", m.Event)
		}
	}
	if encB.Len() != 1 {
		t.Fatalf("%d keys on the instance holding one client", encB.Len())
	}
}

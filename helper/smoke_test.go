package helper_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/protocol"
)

func TestSmoke(t *testing.T) {
	h, err := helper.New(helper.Config{
		Options: helper.Options{AuthTimeout: time.Second},
		Handlers: helper.Handlers{
			Authenticate: func(ctx context.Context, req helper.AuthenticateRequest) (*helper.AuthResult, error) {
				var d struct{ Token string }
				_ = json.Unmarshal(req.Data, &d)
				if strings.HasPrefix(d.Token, "valid-") {
					return &helper.AuthResult{UserID: strings.TrimPrefix(d.Token, "valid-")}, nil
				}
				return nil, nil
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
	ctx := context.Background()
	c, err := fxtest.Dial(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	cd, err := c.Authenticate(ctx, map[string]any{"token": "valid-u1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("connected %+v", cd)
	if _, err := h.Broadcast("hello", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	m, err := c.Expect(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("got %s %s", m.Event, m.Data)
	c2, _ := fxtest.Dial(ctx, url)
	_, err = c2.Authenticate(ctx, map[string]any{"token": "nope"})
	t.Log(err)
	code, reason, err := c2.ExpectClose(ctx)
	t.Log(code, reason, err)
	if code != protocol.CloseAuthFailed {
		t.Fatal(code)
	}
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	start := time.Now()
	if err := h.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	code, reason, _ = c.ExpectClose(ctx)
	t.Log(code, reason, time.Since(start))
}

package helper_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fxws/websocket/helper"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// TestRateLimitNotBankedByASplitFrame over wss, where the socket cannot be
// asked what waits: the byte sent ahead comes in the same TLS record as
// the frame before it, and still nothing is saved up (found in review).
func TestRateLimitNotBankedByASplitFrameOverTLS(t *testing.T) {
	cfg := helper.Config{
		Options: helper.Options{
			AuthTimeout: 2 * time.Second, HeartbeatInterval: time.Hour, HeartbeatTimeout: time.Hour, IdleTimeout: time.Hour,
			Limits: helper.Limits{MessagesPerSecond: 20, MessageBurst: 10},
		},
		Handlers: helper.Handlers{
			Authenticate: tokenAuth,
			Message: func(ctx context.Context, req helper.MessageRequest) error {
				if req.Message.Event == "work" {
					time.Sleep(480 * time.Millisecond)
				}
				return nil
			},
		},
	}
	h, err := helper.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.StartTLS()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = h.Shutdown(ctx)
		srv.Close()
	})
	d := ws.Dialer{TLSConfig: &tls.Config{InsecureSkipVerify: true}}
	conn, _, _, err := d.Dial(context.Background(), "wss"+strings.TrimPrefix(srv.URL, "https")+h.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	got := make(chan string, 200)
	go func() {
		defer close(got)
		for {
			b, err := wsutil.ReadServerText(conn)
			if err != nil {
				return
			}
			got <- string(b)
		}
	}()
	wait := func(sub string) string {
		t.Helper()
		timeout := time.After(5 * time.Second)
		for {
			select {
			case m, ok := <-got:
				if !ok {
					t.Fatalf("connection ended waiting for %q", sub)
				}
				if strings.Contains(m, sub) {
					return m
				}
			case <-timeout:
				t.Fatalf("timed out waiting for %q", sub)
			}
		}
	}
	_ = wsutil.WriteClientText(conn, []byte(`{"event":"authenticate","data":{"token":"valid-u1"}}`))
	wait(`"connected"`)
	work := rawFrame(true, 0, ws.OpText, true, []byte(`{"event":"work","data":1}`))
	_, _ = conn.Write(work[:1])
	for i := 0; i < 8; i++ { // 4 s at 2/s: a tenth of the rate
		_, _ = conn.Write(append(append([]byte(nil), work[1:]...), work[0]))
		time.Sleep(500 * time.Millisecond)
	}
	var flood bytes.Buffer
	flood.Write(work[1:])
	for i := 0; i < 60; i++ {
		flood.Write(rawFrame(true, 0, ws.OpText, true, []byte(`{"event":"tick","data":1}`)))
	}
	flood.Write(rawFrame(true, 0, ws.OpText, true, []byte("not json")))
	_, _ = conn.Write(flood.Bytes())
	if m := wait(`"error"`); !strings.Contains(m, "Rate limit") {
		t.Fatalf("60 messages at once with a burst of 10 over wss, after 4 s at 2/s that left one byte unread after each 480 ms call, were all let in: %s", m)
	}
}

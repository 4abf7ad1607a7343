package helper_test

import (
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

// Over TLS a read returns at most one record, so what came during a slow
// call is read in pieces, between which other frames (a heartbeat) are
// handled: the steady client of TestRateLimitForgivesWhatTheServerHeldUp
// is not closed over wss either (found in review: a first version ended
// the forgiveness at the first short read, which over TLS is every read).
func TestRateLimitForgivesWhatTheServerHeldUpOverTLS(t *testing.T) {
	cfg := helper.Config{
		Options: helper.Options{
			AuthTimeout: 2 * time.Second, HeartbeatInterval: time.Hour, HeartbeatTimeout: time.Hour, IdleTimeout: time.Hour,
			Limits: helper.Limits{MessagesPerSecond: 20, MessageBurst: 10},
		},
		Handlers: helper.Handlers{
			Authenticate: tokenAuth,
			Message: func(ctx context.Context, req helper.MessageRequest) error {
				if req.Message.Event == "save" {
					time.Sleep(1500 * time.Millisecond)
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
	send := func(s string) { _ = wsutil.WriteClientText(conn, []byte(s)) } // a close shows as the error event below
	got := make(chan string, 100)
	go func() {
		for {
			b, err := wsutil.ReadServerText(conn)
			if err != nil {
				close(got)
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
	send(`{"event":"authenticate","data":{"token":"valid-steady"}}`)
	wait(`"connected"`)
	send(`{"event":"save","data":1}`)
	tick := time.NewTicker(time.Second / 15)
	defer tick.Stop()
	for i := 0; i < 38; i++ {
		<-tick.C
		send(`{"event":"cursor","data":1}`)
		if i == 5 {
			send(`{"event":"heartbeat"}`) // the client's periodic heartbeat, due during the call
		}
	}
	send("not json")
	if m := wait(`"error"`); strings.Contains(m, "Rate limit") {
		t.Fatalf("a client at 15/s under a 20/s limit was closed for its rate after a 1.5 s call over TLS: %s", m)
	}
}

package conformance

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/fxws/websocket/fxtest"
	"github.com/gobwas/ws"
)

// The permessage-deflate rows run on one dedicated instance with the
// original's perMessageDeflate on: our demo takes PER_MESSAGE_DEFLATE=1
// (outside the contract); the original's start script has no switch for
// it, so for the original these rows need CONFORMANCE_DEFLATE_SERVER_CMD,
// a command starting it with serverOptions.perMessageDeflate = true.
var deflating dedicated

func deflateServer(t *testing.T) string {
	t.Helper()
	s := cfg
	if c := os.Getenv("CONFORMANCE_DEFLATE_SERVER_CMD"); c != "" {
		s.serverCmd = c
	} else if cfg.impl == implIgnis {
		t.Skip("the original needs CONFORMANCE_DEFLATE_SERVER_CMD (perMessageDeflate on)")
	}
	return deflating.wsURL(t, s, "PER_MESSAGE_DEFLATE=1")
}

func dialCompressed(t *testing.T, u string) *fxtest.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, err := fxtest.DialCompressed(ctx, u, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Abort() })
	return c
}

// compressedFrame is a client frame carrying msg compressed (RSV1).
func compressedFrame(msg string) ws.Frame {
	f := ws.NewTextFrame(fxtest.Deflate([]byte(msg)))
	f.Header.Rsv = ws.Rsv(true, false, false)
	return f
}

// With the option off (the contract's default), an offer is declined.
func TestDeflateDeclinedByDefault(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, err := fxtest.DialCompressed(ctx, cfg.wsURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Abort()
	if c.Compressed() {
		t.Fatal("permessage-deflate accepted with the option off")
	}
}

// Compressed messages from the client are handled like plain ones; the
// server's own frames come plain (the original never asks to compress).
func TestDeflateRoundTrip(t *testing.T) {
	t.Parallel()
	u := deflateServer(t)
	c := dialCompressed(t, u)
	if !c.Compressed() {
		t.Fatal("permessage-deflate not negotiated")
	}
	ctx := ctxWait(t)
	if _, err := c.Authenticate(ctx, map[string]any{"token": "valid-" + uniq("z")}); err != nil {
		t.Fatalf("compressed authenticate: %v", err)
	}
	text := strings.Repeat("compressible ", 500)
	emit(t, c, "echo", text)
	jsonEqual(t, expect(t, c, "echo"), `"`+text+`"`)
	// A plain message on the same connection.
	if err := c.WriteFrame(ws.NewTextFrame([]byte(`{"event":"echo","data":"plain"}`))); err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, expect(t, c, "echo"), `"plain"`)
}

// Bad compressed input closes with the original's codes and reasons.
func TestDeflateBadInput(t *testing.T) {
	t.Parallel()
	u := deflateServer(t)
	junk := ws.NewTextFrame([]byte{0xff, 0xfe, 1, 2, 3})
	junk.Header.Rsv = ws.Rsv(true, false, false)
	ping := ws.NewPingFrame([]byte("x"))
	ping.Header.Rsv = ws.Rsv(true, false, false)
	big := `{"event":"echo","data":"` + strings.Repeat("a", cfg.maxPayload) + `"}`
	for _, tc := range []struct {
		name   string
		frame  ws.Frame
		code   ws.StatusCode
		reason string
	}{
		{"not deflate data", junk, ws.StatusInvalidFramePayloadData, "Received invalid compressed data"},
		{"inflates past maxPayloadLength", compressedFrame(big), ws.StatusMessageTooBig, "Received too big message"},
		{"RSV1 on a ping", ping, ws.StatusProtocolError, "Received unexpected RSV1 bit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialCompressed(t, u)
			if _, err := c.Authenticate(ctxWait(t), map[string]any{"token": "valid-" + uniq("b")}); err != nil {
				t.Fatal(err)
			}
			if err := c.WriteFrame(tc.frame); err != nil {
				t.Fatal(err)
			}
			expectClose(t, c, tc.code, tc.reason, waitFor)
		})
	}
}

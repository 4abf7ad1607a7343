package conformance

import (
	"testing"

	"github.com/gobwas/ws"
)

// TestProtocolErrors: frames a browser never sends get the original's
// (Bun's) close code and reason.
func TestProtocolErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		code   ws.StatusCode
		reason string
		frame  func() ws.Frame
	}{
		{"invalid UTF-8 text", 1007, "Received invalid UTF-8", func() ws.Frame { return ws.NewTextFrame([]byte{'"', 0xff, 0xfe, '"'}) }},
		{"RSV1 without extension", 1002, "Received unexpected RSV1 bit", func() ws.Frame {
			f := ws.MaskFrameInPlace(ws.NewTextFrame([]byte(`{"event":"echo"}`)))
			f.Header.Rsv = ws.Rsv(true, false, false)
			return f
		}},
		{"reserved opcode", 1002, "Received invalid opcode", func() ws.Frame {
			return ws.MaskFrameInPlace(ws.NewFrame(ws.OpCode(0x3), true, []byte("x")))
		}},
		{"continuation without start", 1002, "Received continuation frame outside a fragmented message", func() ws.Frame {
			return ws.MaskFrameInPlace(ws.NewFrame(ws.OpContinuation, true, []byte("x")))
		}},
		{"fragmented ping", 1002, "Received fragmented control frame", func() ws.Frame {
			return ws.MaskFrameInPlace(ws.NewFrame(ws.OpPing, false, []byte("x")))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, _ := authed(t, "valid-"+uniq("proto-"))
			f := tc.frame()
			if err := c.WriteFrame(f); err != nil {
				t.Fatal(err)
			}
			code, reason, err := c.ExpectClose(ctxWait(t))
			if err != nil {
				t.Fatal(err)
			}
			if code != tc.code {
				t.Fatalf("close %d %q, want %d %q", code, reason, tc.code, tc.reason)
			}
			if reason != tc.reason {
				t.Errorf("close reason %q, want the original's %q (code %d matches)", reason, tc.reason, code)
			}
		})
	}
}

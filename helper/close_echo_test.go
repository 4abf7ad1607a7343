package helper_test

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

// The close echo with odd codes and reasons: codes no peer may send are a
// protocol error, a reason that is not UTF-8 is 1007, a full 123-byte
// reason comes back whole.
func TestCloseEchoEdges(t *testing.T) {
	payload := func(code uint16, reason string) []byte {
		p := make([]byte, 2+len(reason))
		binary.BigEndian.PutUint16(p, code)
		copy(p[2:], reason)
		return p
	}
	cases := []struct {
		name       string
		p          []byte
		wantCode   int
		wantReason string
	}{
		{"1005", payload(1005, "x"), 1002, ""},
		{"1006", payload(1006, ""), 1002, ""},
		{"1015", payload(1015, "x"), 1002, ""},
		{"999", payload(999, ""), 1002, ""},
		{"5000", payload(5000, ""), 1002, ""},
		{"bad utf8", payload(1000, "a\xffb"), 1007, ""},
		{"123 bytes", payload(4001, strings.Repeat("é", 61)+"a"), 4001, strings.Repeat("é", 61) + "a"},
		{"empty", nil, 1000, ""},
		{"code only", payload(3000, ""), 3000, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k := newKit(t, rawSocket, nil)
			conn, _ := k.rawClient("u1", 0)
			defer conn.Close()
			if _, err := conn.Write(rawFrame(true, 0, ws.OpClose, true, tc.p)); err != nil {
				t.Fatal(err)
			}
			_, code, reason := readUntilClose(t, conn)
			if code != tc.wantCode || (tc.wantReason != "" && reason != tc.wantReason) {
				t.Fatalf("got %d %q, want %d %q", code, reason, tc.wantCode, tc.wantReason)
			}
			t.Logf("%d %q", code, reason)
		})
	}
}

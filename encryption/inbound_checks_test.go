package encryption_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/fxws/websocket/protocol"
)

// A sealed message passes the checks a plain one does once it is opened:
// the frame's checks ran on ciphertext. Each case sends one refused message
// and then a good one, and the handler must see only the good one.
func TestOpenedMessagesPassThePlainChecks(t *testing.T) {
	s := startServer(t, nil)
	c, _ := connect(t, s, "u")
	seal := func(plain string) {
		t.Helper()
		p, err := c.Session().Seal([]byte(plain))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Emit(protocol.EventEncrypted, p); err != nil {
			t.Fatal(err)
		}
	}
	deep := strings.Repeat("[", 500) + strings.Repeat("]", 500)
	cases := []struct {
		name, plain string
		errorEvent  bool // answered with the invalid-format error
	}{
		{"nested past MaxJSONDepth", `{"event":"bad","data":` + deep + `}`, true},
		{"data not UTF-8", "{\"event\":\"bad\",\"data\":\"\xff\xfe\"}", false},
		{"event not UTF-8", "{\"event\":\"bad\xff\",\"data\":1}", false},
		{"keys in another case", `{"EVENT":"bad","Data":1}`, false},
		{"not an object", `["bad"]`, false},
	}
	for i, tc := range cases {
		seal(tc.plain)
		if tc.errorEvent {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			m, err := c.ExpectDecrypted(ctx, protocol.EventError)
			cancel()
			if err != nil || !strings.Contains(string(m.Data), protocol.ErrTextInvalidFormat) {
				t.Fatalf("%s: error event %s, %v", tc.name, m.Data, err)
			}
		}
		ok, _ := json.Marshal(map[string]any{"event": "ok", "data": i})
		seal(string(ok))
		deadline := time.After(3 * time.Second)
		for len(s.messages()) <= i {
			select {
			case <-s.got:
			case <-deadline:
				t.Fatalf("%s: the good message after it never arrived", tc.name)
			}
		}
		for _, m := range s.messages() {
			if m.Message.Event != "ok" {
				t.Fatalf("%s: the handler got %q: %q", tc.name, m.Message.Event, m.Message.Data)
			}
		}
	}
}

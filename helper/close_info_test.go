package helper_test

import (
	"context"
	"strings"
	"testing"

	"github.com/fxws/websocket/helper"
)

// ClientInfo.CloseReason is the reason the close frame carried: a long one
// is cut to the frame's 123 bytes for the callback too (found in review).
func TestCloseReasonIsWhatTheFrameCarried(t *testing.T) {
	k := newKit(t, rawSocket, nil)
	c, cd := k.login("banned")
	long := strings.Repeat("r", 200)
	if ok, _ := k.h.Disconnect(cd.ID, 4200, long); !ok {
		t.Fatal("Disconnect failed")
	}
	_, sent, err := c.ExpectClose(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var info helper.ClientInfo
	k.rec.waitFor(t, "the disconnect callback", func() bool {
		for _, i := range k.rec.disconnected {
			if i.ClientID == cd.ID {
				info = i
				return true
			}
		}
		return false
	})
	if info.CloseReason != sent {
		t.Fatalf("the close frame carried a %d-byte reason, the disconnect callback reports a %d-byte one", len(sent), len(info.CloseReason))
	}
}

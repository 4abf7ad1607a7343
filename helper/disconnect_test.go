package helper_test

import (
	"errors"
	"maps"
	"net"
	"strings"
	"testing"

	"github.com/fxws/websocket/helper"
	"github.com/gobwas/ws"
)

// The application closes a client (a ban, a logout): the client gets the
// close frame after what was already sent to it, and the disconnect
// callback runs as for any close.
func TestDisconnect(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, nil)
		c, cd := k.login("mallory")
		if ok, _ := k.h.SendToClient(cd.ID, "before", 1); !ok {
			t.Fatal("SendToClient to a live client reported no delivery")
		}
		ok, err := k.h.Disconnect(cd.ID, 4100, "Banned")
		if !ok || err != nil {
			t.Fatalf("Disconnect = %v, %v", ok, err)
		}
		expectEvent(t, c, "before")
		expectClose(t, c, 4100, "Banned")
		k.rec.waitFor(t, "the disconnect callback", func() bool { return slicesContains(k.rec.disconnected, cd.ID) })
		if ok, _ := k.h.Disconnect(cd.ID, 1000, ""); ok {
			t.Error("Disconnect of a gone client reported success")
		}
		if ok, _ := k.h.SendToClient(cd.ID, "after", 1); ok {
			t.Error("SendToClient to a gone client reported a delivery")
		}

		// An unauthenticated client can be closed too.
		u := k.dial()
		id := k.unauthorizedID()
		if ok, err := k.h.Disconnect(id, 1008, strings.Repeat("é", 100)+"\xff"); !ok || err != nil {
			t.Fatalf("Disconnect of an unauthenticated client = %v, %v", ok, err)
		}
		// The reason is cut to a close frame's 123 bytes and stays UTF-8
		// (the kit's client fails the read otherwise).
		expectClose(t, u, 1008, strings.Repeat("é", 61))
	})
}

func TestDisconnectUser(t *testing.T) {
	k := newKit(t, rawSocket, nil)
	a, _ := k.login("eve")
	b, _ := k.login("eve")
	other, _ := k.login("bob")
	n, err := k.h.DisconnectUser("eve", 4101, "Logged out")
	if n != 2 || err != nil {
		t.Fatalf("DisconnectUser = %d, %v; want 2 connections closed", n, err)
	}
	expectClose(t, a, 4101, "Logged out")
	expectClose(t, b, 4101, "Logged out")
	roundTrip(t, other) // ordered after any close frame the server sent it
	if other.Closed() {
		t.Fatal("another user's client was closed")
	}
	if n, _ := k.h.DisconnectUser("nobody", 1000, ""); n != 0 {
		t.Errorf("DisconnectUser of an absent user closed %d", n)
	}
}

func TestDisconnectRefusesBadCodes(t *testing.T) {
	k := newKit(t, rawSocket, nil)
	c, cd := k.login("u")
	for _, code := range []int{0, 999, 1004, 1005, 1006, 1015, 2000, 5000, -1, 70000} {
		if ok, err := k.h.Disconnect(cd.ID, code, ""); ok || !errors.Is(err, helper.ErrInvalidCloseCode) {
			t.Errorf("Disconnect with code %d = %v, %v; want ErrInvalidCloseCode", code, ok, err)
		}
		if _, err := k.h.DisconnectUser("u", code, ""); !errors.Is(err, helper.ErrInvalidCloseCode) {
			t.Errorf("DisconnectUser with code %d: %v; want ErrInvalidCloseCode", code, err)
		}
	}
	roundTrip(t, c)
	if c.Closed() {
		t.Fatal("a refused Disconnect closed the client")
	}
}

// The disconnect callback says how the session ended: the first close
// frame's code and reason and who sent it, or 1006 for a connection that
// ended without one (from a user trial: an on-call engineer could not tell
// why a client had left).
func TestDisconnectCallbackSaysHowTheSessionEnded(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k := newKit(t, tr, nil)
		ended := func(id string) helper.ClientInfo {
			t.Helper()
			var info helper.ClientInfo
			k.rec.waitFor(t, "the disconnect callback", func() bool {
				for _, i := range k.rec.disconnected {
					if i.ClientID == id {
						info = i
						return true
					}
				}
				return false
			})
			return info
		}
		check := func(what string, got helper.ClientInfo, code int, reason, by string) {
			t.Helper()
			if got.CloseCode != code || got.CloseReason != reason || got.ClosedBy != by {
				t.Errorf("%s: ended %d %q by %q, want %d %q by %q", what, got.CloseCode, got.CloseReason, got.ClosedBy, code, reason, by)
			}
		}

		c, cd := k.login("leaver")
		_ = c.WriteFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(4100, "bye")))
		check("client's close", ended(cd.ID), 4100, "bye", helper.CloseByClient)

		c, cd = k.login("quiet-leaver")
		_ = c.WriteFrame(ws.NewCloseFrame(nil))
		check("client's close without a code", ended(cd.ID), 1005, "", helper.CloseByClient)

		_, cd = k.login("banned")
		if ok, _ := k.h.Disconnect(cd.ID, 4200, "Banned"); !ok {
			t.Fatal("Disconnect failed")
		}
		check("server's Disconnect", ended(cd.ID), 4200, "Banned", helper.CloseByServer)

		c, cd = k.login("dropped")
		_ = c.Conn().(*net.TCPConn).SetLinger(0)
		_ = c.Abort()
		check("dropped connection", ended(cd.ID), 1006, "", "")

		// The same endings, counted (the callback runs after the count).
		s := k.h.Stats()
		if !maps.Equal(s.ServerCloses, map[int]uint64{4200: 1}) ||
			!maps.Equal(s.ClientCloses, map[int]uint64{4100: 1, 1005: 1}) || s.Dropped != 1 {
			t.Errorf("Stats: server closes %v, client closes %v, dropped %d; want map[4200:1], map[1005:1 4100:1], 1",
				s.ServerCloses, s.ClientCloses, s.Dropped)
		}
	})
}

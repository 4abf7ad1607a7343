package helper_test

import (
	"context"
	"strings"
	"testing"

	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/protocol"
)

// A user added to a room, then taken out, on every instance (asked by the
// collaborative-editor and chat trials: access to a document revoked, a
// kick from a channel), every connection of theirs, and no one else's.
func TestAddAndRemoveUserEverywhere(t *testing.T) {
	hub := broker.NewMemoryHub()
	a := newKit(t, rawSocket, func(c *helper.Config) { c.Broker = hub.NewBroker() })
	b := newKit(t, rawSocket, func(c *helper.Config) { c.Broker = hub.NewBroker() })
	ctx := context.Background()
	a1, cdA1 := a.login("u1")
	_, cdB1 := b.login("u1")
	_, cdB2 := b.login("u1")
	other, cdOther := b.login("u2")
	if err := a.h.AddUserToRooms(ctx, "u1", "doc-1", "doc-2"); err != nil {
		t.Fatal(err)
	}
	// Sent to the user after the join, on the same channel: each instance
	// has applied the join when it delivers it.
	if err := a.h.SendToUser(ctx, "u1", "state", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := a1.Expect(ctx, "state"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{cdA1.ID, cdB1.ID, cdB2.ID} {
		h := b.h
		if id == cdA1.ID {
			h = a.h
		}
		eventually(t, "the join applied to "+id, func() bool { return h.InRoom(id, "doc-1") && h.InRoom(id, "doc-2") })
	}
	if b.h.InRoom(cdOther.ID, "doc-1") {
		t.Fatal("another user's connection was put in the room")
	}
	if err := b.h.RemoveUserFromRooms(ctx, "u1", "doc-1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the leave applied on the other instance", func() bool { return !a.h.InRoom(cdA1.ID, "doc-1") })
	for _, c := range []struct {
		h  *helper.WebSocketServerHelper
		id string
	}{{a.h, cdA1.ID}, {b.h, cdB1.ID}, {b.h, cdB2.ID}} {
		if c.h.InRoom(c.id, "doc-1") || !c.h.InRoom(c.id, "doc-2") {
			t.Fatalf("%s after the leave: in doc-1 %v, in doc-2 %v; want out of doc-1 only", c.id, c.h.InRoom(c.id, "doc-1"), c.h.InRoom(c.id, "doc-2"))
		}
	}
	roundTrip(t, other)

	// Refused before anything is done.
	for name, err := range map[string]error{
		"empty user":    a.h.AddUserToRooms(ctx, "", "r"),
		"no rooms":      a.h.AddUserToRooms(ctx, "u1"),
		"internal room": a.h.AddUserToRooms(ctx, "u1", "ok", protocol.InternalPrefix+"x"),
		"empty room":    a.h.RemoveUserFromRooms(ctx, "u1", ""),
		"long room":     a.h.RemoveUserFromRooms(ctx, "u1", strings.Repeat("r", protocol.MaxRoomNameLength+1)),
		"client id":     a.h.RemoveUserFromRooms(ctx, "u1", cdA1.ID),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if a.h.InRoom(cdA1.ID, "ok") {
		t.Fatal("a refused call put the user in a room")
	}

	// Envelopes from elsewhere without a user or a rooms list are counted
	// and harm no one; names that are not rooms are skipped.
	pub := hub.NewBroker()
	for _, env := range []string{
		`{"serverId":"elsewhere","type":"join-user","target":"u2","event":"join","data":null}`,
		`{"serverId":"elsewhere","type":"join-user","target":"u2","event":"join","data":{"rooms":"r"}}`,
		`{"serverId":"elsewhere","type":"leave-user","target":"u2","event":"leave","data":{"rooms":[]}}`,
		`{"serverId":"elsewhere","type":"join-user","target":"u2","event":"join","data":{"rooms":[1]}}`,
	} {
		if err := pub.Publish(ctx, protocol.UserChannel("u2"), []byte(env)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the bad envelopes counted", func() bool { return b.h.Stats().BadEnvelopes == 4 })
	env := `{"serverId":"emitter","type":"join-user","target":"u2","event":"join","data":{"rooms":["ws:internal","","lobby"]}}`
	if err := pub.Publish(ctx, protocol.UserChannel("u2"), []byte(env)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "u2 in lobby", func() bool { return b.h.InRoom(cdOther.ID, "lobby") })
	if b.h.InRoom(cdOther.ID, "ws:internal") {
		t.Fatal("an internal name was joined from an envelope")
	}
	roundTrip(t, other)
}

// One session per device (a chat trial's ask): the app keeps the device's
// client id and closes it on whichever instance holds it.
func TestDisconnectEverywhere(t *testing.T) {
	hub := broker.NewMemoryHub()
	a := newKit(t, rawSocket, func(c *helper.Config) { c.Broker = hub.NewBroker() })
	b := newKit(t, rawSocket, func(c *helper.Config) { c.Broker = hub.NewBroker() })
	ctx := context.Background()
	old, cdOld := b.login("u1")
	other, cdOther := b.login("u1")
	here, cdHere := a.login("u1")
	if err := a.h.DisconnectEverywhere(ctx, cdOld.ID, 4000, "Signed in on this device again"); err != nil {
		t.Fatal(err)
	}
	expectClose(t, old, 4000, "Signed in on this device again")
	if err := a.h.DisconnectEverywhere(ctx, cdHere.ID, 4000, ""); err != nil {
		t.Fatal(err)
	}
	expectClose(t, here, 4000, "")
	roundTrip(t, other)
	for name, err := range map[string]error{
		"empty id":   a.h.DisconnectEverywhere(ctx, "", 4000, ""),
		"close 1005": a.h.DisconnectEverywhere(ctx, "x", 1005, ""),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	pub := hub.NewBroker()
	env := `{"serverId":"elsewhere","type":"disconnect-client","target":"` + cdOther.ID + `","event":"disconnect","data":{"code":1005}}`
	if err := pub.Publish(ctx, protocol.ClientChannel(cdOther.ID), []byte(env)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the bad envelope counted", func() bool { return b.h.Stats().BadEnvelopes == 1 })
	roundTrip(t, other)
}

package helper_test

import (
	"context"
	"testing"

	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/helper"
)

// AddUserToRooms refuses a name like a client id (and instances skip one
// from the emitter): a name taken from user input ("/invite <channel>")
// would put the user in another client's id room, through which sends to
// that client travel between instances, the eavesdropping a client's own
// join and validate-room's answer are refused (hardening: "eavesdropping
// through id rooms"; Options.AllowClientIDRooms). Found in review.
func TestAddUserToRoomsRefusesAnotherClientsIDRoom(t *testing.T) {
	hub := broker.NewMemoryHub()
	a := newKit(t, rawSocket, func(c *helper.Config) { c.Broker = hub.NewBroker() })
	b := newKit(t, rawSocket, func(c *helper.Config) { c.Broker = hub.NewBroker() })
	ctx := context.Background()
	_, victim := b.login("victim")
	_, cdM := a.login("mallory")
	_ = a.h.AddUserToRooms(ctx, "mallory", victim.ID)
	if a.h.InRoom(cdM.ID, victim.ID) {
		t.Fatal("AddUserToRooms put mallory in the victim's id room: what is sent to the victim from another instance reaches her")
	}
}

package helper_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/protocol"
)

// midAuthPair is two instances on one hub; b's authenticator gives the user
// the room "general" (as an app reading the user's subscriptions from its
// store) and, for {"slow":true}, waits for release after that read.
func midAuthPair(t *testing.T) (a, b *kit, inAuth chan struct{}, release chan struct{}) {
	hub := broker.NewMemoryHub()
	inAuth = make(chan struct{}, 1)
	release = make(chan struct{})
	a = newKit(t, rawSocket, func(c *helper.Config) { c.Broker = hub.NewBroker() })
	b = newKit(t, rawSocket, func(c *helper.Config) {
		c.Broker = hub.NewBroker()
		auth := c.Handlers.Authenticate
		c.Handlers.Authenticate = func(ctx context.Context, req helper.AuthenticateRequest) (*helper.AuthResult, error) {
			res, err := auth(ctx, req)
			if res != nil && strings.Contains(string(req.Data), `"withGeneral":true`) {
				res.Rooms = []string{"general"}
			}
			if strings.Contains(string(req.Data), `"slow":true`) {
				inAuth <- struct{}{}
				<-release
			}
			return res, err
		}
	})
	return a, b, inAuth, release
}

// callMidAuthentication makes call for dave and the room general on
// instance a while dave's only connection on instance b is in its
// authenticate callback (withGeneral: which gives it the room), and returns
// b, the connection and its id once it is connected.
func callMidAuthentication(t *testing.T, withGeneral bool, call func(*helper.WebSocketServerHelper, context.Context, string, ...string) error) (*kit, *fxtest.Client, string) {
	t.Helper()
	a, b, inAuth, release := midAuthPair(t)
	c := b.dial()
	if err := c.Emit(protocol.EventAuthenticate, map[string]any{"token": "valid-dave", "slow": true, "withGeneral": withGeneral}); err != nil {
		t.Fatal(err)
	}
	<-inAuth
	if err := call(a.h, context.Background(), "dave", "general"); err != nil {
		t.Fatal(err)
	}
	close(release)
	m := expectEvent(t, c, protocol.EventConnected)
	var cd protocol.ConnectedData
	if err := json.Unmarshal(m.Data, &cd); err != nil {
		t.Fatal(err)
	}
	return b, c, cd.ID
}

// RemoveUserFromRooms is documented to win over "rooms its authentication
// was giving it ... such a room is left again as soon as it is joined". Made
// on another instance (or by a worker's emitter) while the user's only
// connection on this instance is in its authenticate callback, it travels on
// the user's channel, which this instance does not listen on yet (audience
// mode subscribes it once the connection is bound): the kick never arrives
// and the connection keeps the room it was just refused. DisconnectUser had
// the same gap and was moved to the broadcast channel
// (TestDisconnectUserEverywhereReachesAConnectionMidAuthenticationElsewhere).
func TestRemoveUserFromRoomsElsewhereReachesAConnectionMidAuthentication(t *testing.T) {
	b, c, id := callMidAuthentication(t, true, (*helper.WebSocketServerHelper).RemoveUserFromRooms)
	if err := c.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if b.h.InRoom(id, "general") {
		t.Fatal("the connection whose authentication was under way kept the room RemoveUserFromRooms (on another instance) took the user out of")
	}
}

// AddUserToRooms: "A connection whose authentication as userID is under way
// joins the rooms once it completes." Not when the call is made on another
// instance (or by the emitter) and this instance has no other connection of
// the user: the join-user envelope goes to the user's channel before this
// instance subscribes it.
func TestAddUserToRoomsElsewhereReachesAConnectionMidAuthentication(t *testing.T) {
	b, _, id := callMidAuthentication(t, false, (*helper.WebSocketServerHelper).AddUserToRooms)
	deadline := time.Now().Add(2 * time.Second)
	for !b.h.InRoom(id, "general") {
		if time.Now().After(deadline) {
			t.Fatal("the connection whose authentication was under way never joined the room AddUserToRooms (on another instance) put the user in")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lateBroadcasts delivers what comes on the broadcast channel late, in
// order, and the rest at once: an instance whose broadcast channel's
// worker lags behind its user channels'.
type lateBroadcasts struct {
	broker.Broker
	delay time.Duration
	q     chan lateMessage
	done  chan struct{}
}

type lateMessage struct {
	channel string
	payload []byte
	due     time.Time
}

func (b *lateBroadcasts) Start(ctx context.Context, h broker.Handler) error {
	b.q, b.done = make(chan lateMessage, 1024), make(chan struct{})
	go func() {
		defer close(b.done)
		for m := range b.q {
			time.Sleep(time.Until(m.due))
			h(m.channel, m.payload)
		}
	}()
	return b.Broker.Start(ctx, func(channel string, payload []byte) {
		if channel == protocol.ChannelBroadcast {
			b.q <- lateMessage{channel, bytes.Clone(payload), time.Now().Add(b.delay)}
			return
		}
		h(channel, payload)
	})
}

func (b *lateBroadcasts) Close() error {
	err := b.Broker.Close()
	if b.q != nil {
		close(b.q)
		<-b.done
		b.q = nil
	}
	return err
}

// An invite and then a kick, from another instance: each order comes twice
// (broadcast channel, user's channel), and the broadcast copies here come
// late. Applied both, the late copy of the invite put the user back in the
// room after the kick, until the kick's own late copy: what was sent to
// the room meanwhile reached a user whose access was revoked. Applied
// once, whichever came first, the kick stands throughout.
func TestLateBroadcastCopyOfAnOrderDoesNotUndoALaterOne(t *testing.T) {
	hub := broker.NewMemoryHub()
	a := newKit(t, rawSocket, func(c *helper.Config) { c.Broker = hub.NewBroker() })
	b := newKit(t, rawSocket, func(c *helper.Config) {
		c.Broker = &lateBroadcasts{Broker: hub.NewBroker(), delay: 300 * time.Millisecond}
	})
	_, cd := b.login("dave")
	ctx := context.Background()
	if err := a.h.AddUserToRooms(ctx, "dave", "general"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the invite applied", func() bool { return b.h.InRoom(cd.ID, "general") })
	time.Sleep(150 * time.Millisecond) // the kick comes a while after
	if err := a.h.RemoveUserFromRooms(ctx, "dave", "general"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the kick applied", func() bool { return !b.h.InRoom(cd.ID, "general") })
	// Both late copies come within this.
	for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
		if b.h.InRoom(cd.ID, "general") {
			t.Fatal("the late broadcast copy of the invite put the user back in the room after the kick")
		}
	}
}

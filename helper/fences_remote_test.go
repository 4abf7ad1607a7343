package helper_test

import (
	"context"
	"strings"
	"testing"

	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/protocol"
)

// "Log out everywhere" from another instance (or a worker's emitter) while
// the user's only connection on this instance is in its authenticate
// callback: this instance does not listen on the user's channel yet
// (audience mode subscribes it once the connection is bound), so the
// disconnect-user envelope travels on the broadcast channel, which every
// instance hears (found in review: on the user's channel it never arrived,
// and the connection stayed open with the revoked session).
func TestDisconnectUserEverywhereReachesAConnectionMidAuthenticationElsewhere(t *testing.T) {
	hub := broker.NewMemoryHub()
	inAuth := make(chan struct{}, 1)
	release := make(chan struct{})
	a := newKit(t, rawSocket, func(c *helper.Config) { c.Broker = hub.NewBroker() })
	b := newKit(t, rawSocket, func(c *helper.Config) {
		c.Broker = hub.NewBroker()
		auth := c.Handlers.Authenticate
		c.Handlers.Authenticate = func(ctx context.Context, req helper.AuthenticateRequest) (*helper.AuthResult, error) {
			if strings.Contains(string(req.Data), `"slow":true`) {
				inAuth <- struct{}{}
				<-release
			}
			return auth(ctx, req)
		}
	})
	c := b.dial()
	if err := c.Emit(protocol.EventAuthenticate, map[string]any{"token": "valid-dave", "slow": true}); err != nil {
		t.Fatal(err)
	}
	<-inAuth
	if err := a.h.DisconnectUserEverywhere(context.Background(), "dave", 4000, "Logged out"); err != nil {
		t.Fatal(err)
	}
	close(release)
	expectClose(t, c, 4000, "Logged out")
}

package helper_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	websocket "github.com/fxws/websocket"
	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
)

// The README's presence recipe ("ClientInfo.Rooms gives a client's rooms in the connected callback
// … and in the disconnect callback: the place to add and remove it") needs
// the disconnect callback of a client to run after its connected callback
// has returned. A client that drops while its connected callback is still
// doing I/O (a presence add in Redis) gets its disconnect callback (the
// remove) first; the add then lands last and the user stays online forever
// (found in a chat trial).
func TestDisconnectCallbackAfterConnectedCallback(t *testing.T) {
	release := make(chan struct{})
	var connectedDone, disconnectedEarly atomic.Bool
	disconnected := make(chan struct{})
	srv := fxtest.StartServer(t,
		websocket.WithAuthenticate(func(context.Context, helper.AuthenticateRequest) (*helper.AuthResult, error) {
			return &helper.AuthResult{UserID: "alice", Rooms: []string{"doc"}}, nil
		}),
		websocket.WithClientConnected(func(ctx context.Context, info helper.ClientInfo) error {
			<-release // a presence add that takes a moment (Redis)
			connectedDone.Store(true)
			return nil
		}),
		websocket.WithClientDisconnected(func(ctx context.Context, info helper.ClientInfo) error {
			if !connectedDone.Load() {
				disconnectedEarly.Store(true)
			}
			close(disconnected)
			return nil
		}),
	)
	c, _ := srv.Connect(t, map[string]string{})
	_ = c.Abort() // the tab is closed right after `connected`
	select {
	case <-disconnected:
	case <-time.After(500 * time.Millisecond):
	}
	close(release)
	<-disconnected
	if disconnectedEarly.Load() {
		t.Fatal("the disconnect callback ran while the connected callback of the same client had not returned: " +
			"a presence add made in the connected callback lands after the remove made in the disconnect callback")
	}
}

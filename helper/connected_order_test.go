package helper_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	websocket "github.com/fxws/websocket"
	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
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

// A connected callback that ignores its context holds the disconnect
// callback; after a while a warning says so, naming the client, and the
// disconnect callback still runs once the connected one returns.
func TestConnectedCallbackHoldingTheDisconnectCallbackIsWarnedOf(t *testing.T) {
	defer helper.SetConnectedCallbackWarnAfter(50 * time.Millisecond)()
	core, logs := observer.New(zap.WarnLevel)
	release := make(chan struct{})
	disconnected := make(chan struct{})
	srv := fxtest.StartServer(t,
		websocket.WithLogger(zap.New(core)),
		websocket.WithAuthenticate(func(context.Context, helper.AuthenticateRequest) (*helper.AuthResult, error) {
			return &helper.AuthResult{UserID: "alice"}, nil
		}),
		websocket.WithClientConnected(func(ctx context.Context, info helper.ClientInfo) error {
			<-release // ignores ctx
			return nil
		}),
		websocket.WithClientDisconnected(func(ctx context.Context, info helper.ClientInfo) error {
			close(disconnected)
			return nil
		}),
	)
	c, id := srv.Connect(t, map[string]string{})
	_ = c.Abort()
	deadline := time.Now().Add(5 * time.Second)
	for logs.FilterMessageSnippet("connected handler is still running").FilterField(zap.String("clientId", id)).Len() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no warning of the connected handler holding the disconnect handler; logs: %v", logs.All())
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case <-disconnected:
		t.Fatal("the disconnect callback ran before the connected callback returned")
	default:
	}
	close(release)
	select {
	case <-disconnected:
	case <-time.After(5 * time.Second):
		t.Fatal("the disconnect callback did not run after the connected callback returned")
	}
}

// The disconnect callback of a client that left while it authenticated
// carries the user its authenticate handler gave, and Connected false:
// a presence app must not remove what its connected callback never added.
func TestDisconnectCallbackSaysWhetherTheClientGotConnected(t *testing.T) {
	inAuth := make(chan struct{}, 1)
	release := make(chan struct{})
	infos := make(chan helper.ClientInfo, 2)
	srv := fxtest.StartServer(t,
		websocket.WithAuthenticate(func(_ context.Context, req helper.AuthenticateRequest) (*helper.AuthResult, error) {
			if strings.Contains(string(req.Data), "slow") {
				inAuth <- struct{}{}
				<-release
			}
			return &helper.AuthResult{UserID: "alice"}, nil
		}),
		websocket.WithClientDisconnected(func(ctx context.Context, info helper.ClientInfo) error {
			infos <- info
			return nil
		}),
	)
	c, _ := srv.Connect(t, map[string]string{})
	_ = c.Close()
	if info := <-infos; !info.Connected || info.UserID != "alice" {
		t.Fatalf("a client that got connected: %+v", info)
	}
	slow, err := fxtest.Dial(context.Background(), srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	if err := slow.Emit("authenticate", map[string]string{"token": "slow"}); err != nil {
		t.Fatal(err)
	}
	<-inAuth
	_ = slow.Abort()
	time.Sleep(50 * time.Millisecond) // the server sees the drop
	close(release)
	select {
	case info := <-infos:
		if info.Connected {
			t.Fatalf("a client that left during its authentication: %+v, want Connected false", info)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no disconnect callback for the client that left during its authentication")
	}
}

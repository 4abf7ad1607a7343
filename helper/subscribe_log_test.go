package helper_test

// From a review of the README's Monitoring section.

import (
	"sync"
	"testing"
	"time"

	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/helper"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// While the broker does not confirm subscriptions (Redis that stopped
// answering, or a reconnect holding the broker's turn), every login waits
// SubscribeTimeout and warns: once a second, with the count held back, as
// the README says of the lines a fault repeats (a crowd logging in during
// the fault logged a line each; found in review).
func TestSubscribeTimeoutWarningIsThrottled(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	hub := broker.NewMemoryHub()
	sb := &stallingBroker{Memory: hub.NewBroker(), entered: make(chan struct{}, 1)}
	k := newKit(t, rawSocket, func(cfg *helper.Config) {
		cfg.Broker = sb
		cfg.Logger = zap.New(core)
		cfg.Options.SubscribeTimeout = 200 * time.Millisecond
	})
	gate := make(chan struct{})
	sb.mu.Lock()
	sb.gate = gate // the broker stops answering
	sb.mu.Unlock()
	t.Cleanup(func() { close(gate) })

	const logins = 20
	start := time.Now()
	var wg sync.WaitGroup
	for i := range logins {
		wg.Go(func() { k.login("crowd-" + string(rune('a'+i))) })
	}
	wg.Wait()
	took := time.Since(start)
	n := logs.FilterMessageSnippet("did not confirm subscriptions").Len()
	if allowed := int(took/time.Second) + 1; n > allowed {
		t.Fatalf("%d logins during one broker stall logged %d warnings in %v (the README: at most one a second, with the count held back)",
			logins, n, took.Round(time.Millisecond))
	}
}

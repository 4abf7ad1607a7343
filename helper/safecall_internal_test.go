package helper

import (
	"errors"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// A callback's panic becomes an error whose log line carries the stack of
// the panic, down to the callback that panicked.
func TestSafeCallKeepsThePanicsStack(t *testing.T) {
	err := safeCall(func() error { return explode() })
	if err == nil || err.Error() != "panic: exploded" {
		t.Fatalf("err = %v, want panic: exploded", err)
	}
	core, logs := observer.New(zap.InfoLevel)
	zap.New(core).Error("callback failed", zap.Error(err))
	verbose, _ := logs.All()[0].ContextMap()["errorVerbose"].(string)
	if !strings.Contains(verbose, "helper.explode") {
		t.Fatalf("errorVerbose %q does not show where the panic happened", verbose)
	}
	if err := safeCall(func() error { return errors.New("plain") }); err == nil || err.Error() != "plain" {
		t.Fatalf("a callback's own error became %v", err)
	}
}

func explode() error { panic("exploded") }

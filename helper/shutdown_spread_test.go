package helper_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/fxws/websocket/helper"
)

// ShutdownSpread closes the clients a few at a time over the spread, each
// with 1001, oldest first, so that they do not all reconnect elsewhere in
// the same millisecond (asked for in an operations trial); and never for
// more than half of what the stop's context leaves.
func TestShutdownSpread(t *testing.T) {
	for _, tc := range []struct {
		name     string
		stop     time.Duration
		minSpan  time.Duration
		maxTotal time.Duration
	}{
		{"spread", 10 * time.Second, 300 * time.Millisecond, 5 * time.Second},
		{"short stop", 400 * time.Millisecond, 0, 400 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newKit(t, rawSocket, func(c *helper.Config) { c.Options.ShutdownSpread = 600 * time.Millisecond })
			var mu sync.Mutex
			var closedAt []time.Time
			var wg sync.WaitGroup
			for i := range 10 {
				c, _ := k.login("u" + string(rune('a'+i)))
				wg.Add(1)
				go func() {
					defer wg.Done()
					code, _, err := c.ExpectClose(context.Background())
					mu.Lock()
					defer mu.Unlock()
					if err != nil || code != 1001 {
						t.Errorf("close %d %v, want 1001", code, err)
					}
					closedAt = append(closedAt, time.Now())
				}()
			}
			ctx, cancel := context.WithTimeout(context.Background(), tc.stop)
			defer cancel()
			start := time.Now()
			if err := k.h.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			took := time.Since(start)
			wg.Wait()
			first, last := closedAt[0], closedAt[0]
			for _, at := range closedAt {
				if at.Before(first) {
					first = at
				}
				if at.After(last) {
					last = at
				}
			}
			t.Logf("closes spread over %v, Shutdown took %v", last.Sub(first).Round(time.Millisecond), took.Round(time.Millisecond))
			if span := last.Sub(first); span < tc.minSpan {
				t.Errorf("10 closes within %v with a 600 ms spread, want them spread over %v at least", span, tc.minSpan)
			}
			if took > tc.maxTotal {
				t.Errorf("Shutdown took %v, past its %v context", took, tc.stop)
			}
		})
	}
}

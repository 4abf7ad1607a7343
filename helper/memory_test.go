package helper_test

import (
	"testing"
	"time"

	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
)

// After a crowd of connections comes, and again after it leaves, memory goes
// back to the OS once, when things are quiet.
func TestReleaseMemoryAfterCrowd(t *testing.T) {
	k := newKit(t, rawSocket, func(cfg *helper.Config) { cfg.Options.ReleaseMemoryAfter = 50 * time.Millisecond })
	var crowd []*fxtest.Client
	for i := 0; i < 300; i++ {
		crowd = append(crowd, k.dial())
	}
	eventually(t, "300 clients", func() bool { return k.h.Stats().Clients == 300 })
	eventually(t, "a release once they are in", func() bool { return k.h.Stats().MemoryReleases == 1 })
	time.Sleep(200 * time.Millisecond)
	if n := k.h.Stats().MemoryReleases; n != 1 {
		t.Fatalf("MemoryReleases = %d with the crowd settled, want 1", n)
	}
	for _, c := range crowd {
		_ = c.Abort()
	}
	eventually(t, "a release once they are gone", func() bool { return k.h.Stats().MemoryReleases == 2 })
	time.Sleep(200 * time.Millisecond)
	if n := k.h.Stats().MemoryReleases; n != 2 {
		t.Fatalf("MemoryReleases = %d after one drop, want 2", n)
	}
}

func TestReleaseMemoryOff(t *testing.T) {
	k := newKit(t, rawSocket, func(cfg *helper.Config) { cfg.Options.ReleaseMemoryAfter = -1 })
	var crowd []*fxtest.Client
	for i := 0; i < 300; i++ {
		crowd = append(crowd, k.dial())
	}
	eventually(t, "300 clients", func() bool { return k.h.Stats().Clients == 300 })
	for _, c := range crowd {
		_ = c.Abort()
	}
	eventually(t, "0 clients", func() bool { return k.h.Stats().Clients == 0 })
	time.Sleep(200 * time.Millisecond)
	if n := k.h.Stats().MemoryReleases; n != 0 {
		t.Fatalf("MemoryReleases = %d with ReleaseMemoryAfter < 0, want 0", n)
	}
}

package helper_test

import (
	"testing"
	"time"

	"github.com/fxws/websocket/fxtest"
	"github.com/fxws/websocket/helper"
)

// crowd connects n clients and waits until the helper counts them.
func crowd(t *testing.T, k *kit, n int) []*fxtest.Client {
	t.Helper()
	var cs []*fxtest.Client
	for i := 0; i < n; i++ {
		cs = append(cs, k.dial())
	}
	eventually(t, "the crowd connected", func() bool { return k.h.Stats().Clients == n })
	return cs
}

// releasesStay checks that MemoryReleases is still want a while later.
func releasesStay(t *testing.T, k *kit, want uint64) {
	t.Helper()
	time.Sleep(200 * time.Millisecond)
	if n := k.h.Stats().MemoryReleases; n != want {
		t.Fatalf("MemoryReleases = %d, want %d", n, want)
	}
}

// After a crowd of connections comes, and again after it leaves, memory goes
// back to the OS once, when things are quiet.
func TestReleaseMemoryAfterCrowd(t *testing.T) {
	k := newKit(t, rawSocket, func(cfg *helper.Config) { cfg.Options.ReleaseMemoryAfter = 50 * time.Millisecond })
	cs := crowd(t, k, 300)
	eventually(t, "a release once they are in", func() bool { return k.h.Stats().MemoryReleases == 1 })
	releasesStay(t, k, 1)
	for _, c := range cs {
		_ = c.Abort()
	}
	eventually(t, "a release once they are gone", func() bool { return k.h.Stats().MemoryReleases == 2 })
	releasesStay(t, k, 2)
}

func TestReleaseMemoryOff(t *testing.T) {
	k := newKit(t, rawSocket, func(cfg *helper.Config) { cfg.Options.ReleaseMemoryAfter = -1 })
	for _, c := range crowd(t, k, 300) {
		_ = c.Abort()
	}
	eventually(t, "0 clients", func() bool { return k.h.Stats().Clients == 0 })
	releasesStay(t, k, 0)
}

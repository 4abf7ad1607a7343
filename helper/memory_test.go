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

// releasesStay checks that MemoryReleases is still want a while later, and
// that the client count, which decides releases, did not move meanwhile.
func releasesStay(t *testing.T, k *kit, want uint64, clients int) {
	t.Helper()
	time.Sleep(200 * time.Millisecond)
	if s := k.h.Stats(); s.MemoryReleases != want || s.Clients != clients {
		t.Fatalf("MemoryReleases = %d with %d clients, want %d with %d", s.MemoryReleases, s.Clients, want, clients)
	}
}

// After a crowd of connections comes, and again after it leaves, memory goes
// back to the OS once, when things are quiet.
func TestReleaseMemoryAfterCrowd(t *testing.T) {
	k := newKit(t, rawSocket, func(cfg *helper.Config) {
		cfg.Options.ReleaseMemoryAfter = 50 * time.Millisecond
		// The crowd never authenticates and must stay until it is sent
		// away: a release (two full collections) can take seconds in a
		// busy -race process, longer than the kit's 2 s auth timeout,
		// which would then empty the server and cause a second release.
		cfg.Options.AuthTimeout = time.Minute
	})
	cs := crowd(t, k, 300)
	eventually(t, "a release once they are in", func() bool { return k.h.Stats().MemoryReleases == 1 })
	releasesStay(t, k, 1, 300)
	for _, c := range cs {
		_ = c.Abort()
	}
	eventually(t, "a release once they are gone", func() bool { return k.h.Stats().MemoryReleases == 2 })
	eventually(t, "0 clients", func() bool { return k.h.Stats().Clients == 0 })
	releasesStay(t, k, 2, 0)
}

func TestReleaseMemoryOff(t *testing.T) {
	k := newKit(t, rawSocket, func(cfg *helper.Config) { cfg.Options.ReleaseMemoryAfter = -1 })
	for _, c := range crowd(t, k, 300) {
		_ = c.Abort()
	}
	eventually(t, "0 clients", func() bool { return k.h.Stats().Clients == 0 })
	releasesStay(t, k, 0, 0)
}

package helper

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// idleWorkers stands in for n workers waiting for work: each ends when
// the pool sheds one. It returns once they wait (shedding hands over only to
// a worker already waiting).
func idleWorkers(p *burstPool, n int, ended *atomic.Int32, wg *sync.WaitGroup) {
	p.idle.Add(int32(n))
	var ready sync.WaitGroup
	ready.Add(n)
	defer func() {
		ready.Wait()
		time.Sleep(20 * time.Millisecond) // from Done to parked on the channel
	}()
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ready.Done()
			<-p.shed
			p.idle.Add(-1)
			ended.Add(1)
		}()
	}
}

func TestBurstPoolTrimKeepsWorkersTheLoadNeeded(t *testing.T) {
	p := newBurstPool()
	p.minIdle = 2
	var ended atomic.Int32
	var wg sync.WaitGroup
	idleWorkers(p, 10, &ended, &wg)
	defer func() {
		p.shedIdle() // the goroutines still waiting
		for p.idle.Load() > 0 {
			p.shedIdle()
		}
		wg.Wait()
	}()

	// The first trim only starts the interval: no low-water mark yet.
	p.trim()
	if got := ended.Load(); got != 0 {
		t.Fatalf("first trim ended %d workers, want 0", got)
	}
	// During the interval the bursts took all but 7 at once, so 3 were
	// needed and 7 were not.
	p.noteIdle(9)
	p.noteIdle(7)
	p.noteIdle(8)
	p.trim()
	waitFor(t, "7 workers ended", func() bool { return ended.Load() == 7 })
	if got := p.idle.Load(); got != 3 {
		t.Fatalf("idle after trim = %d, want 3", got)
	}
	// A quiet interval: everything above minIdle goes, nothing below.
	p.trim()
	waitFor(t, "down to minIdle", func() bool { return p.idle.Load() == 2 })
	p.trim()
	p.trim()
	if got := p.idle.Load(); got != 2 {
		t.Fatalf("idle = %d after quiet trims, want minIdle 2", got)
	}
}

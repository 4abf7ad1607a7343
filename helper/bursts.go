package helper

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
)

// burstPool runs the bursts of polled connections on reusable goroutines.
// A fresh goroutine per burst would start on a small stack and grow it
// (copying) through JSON decoding and the application's handler on every
// inbound message; a worker keeps its grown stack. A burst goes to an idle
// worker if one is waiting, else to a new one, so a handler that blocks
// never holds up anyone else.
//
// How many workers wait for work follows the load: as many as were busy at
// once, up to maxIdle, so a steady load of concurrent bursts (a hundred
// chatty clients on one processor make dozens ready at each poll) reuses
// its workers instead of starting, and growing the stack of, a goroutine
// per burst, which cost a tenth of the CPU of an echo. Workers that stayed
// idle through a whole trim interval end (trim), down to minIdle.
type burstPool struct {
	work    chan *client
	stop    chan struct{}
	shed    chan struct{} // ends one idle worker per receive
	idle    atomic.Int32
	idleLow atomic.Int32 // the fewest idle workers since the last trim
	minIdle int32
	maxIdle int32
	wg      sync.WaitGroup
}

// maxIdleWorkers caps the workers kept waiting: each holds a stack grown by
// JSON decoding and handlers, some KiB.
const maxIdleWorkers = 256

func newBurstPool() *burstPool {
	return &burstPool{
		work:    make(chan *client),
		stop:    make(chan struct{}),
		shed:    make(chan struct{}),
		minIdle: int32(4 * runtime.GOMAXPROCS(0)),
		maxIdle: maxIdleWorkers,
	}
}

// run starts a burst for c (signalled by the poller).
func (p *burstPool) run(c *client) {
	select {
	case p.work <- c:
		return
	default:
	}
	p.wg.Add(1)
	go p.worker(c)
}

func (p *burstPool) worker(c *client) {
	defer p.wg.Done()
	for {
		c.burst(true)
		if p.idle.Add(1) > p.maxIdle {
			p.idle.Add(-1)
			return
		}
		select {
		case c = <-p.work:
			p.noteIdle(p.idle.Add(-1))
		case <-p.stop:
			p.idle.Add(-1)
			return
		case <-p.shed:
			p.idle.Add(-1)
			return
		}
	}
}

// noteIdle lowers the low-water mark of idle workers to n.
func (p *burstPool) noteIdle(n int32) {
	for {
		low := p.idleLow.Load()
		if n >= low || p.idleLow.CompareAndSwap(low, n) {
			return
		}
	}
}

// trim ends the workers that none of the bursts since the last trim needed
// (the low-water mark of idle workers), keeping minIdle.
func (p *burstPool) trim() {
	surplus := min(p.idleLow.Swap(p.idle.Load()), p.idle.Load()-p.minIdle)
	for ; surplus > 0; surplus-- {
		select {
		case p.shed <- struct{}{}:
		default:
			return
		}
	}
}

// shedIdle ends the workers waiting for work, once the crowd that needed
// them has gone (see releaseMemory): each holds a stack grown by JSON
// decoding and handlers.
func (p *burstPool) shedIdle() {
	for {
		select {
		case p.shed <- struct{}{}:
		default:
			return
		}
	}
}

// close ends the idle workers, and the busy ones once their burst is over;
// it waits for them until ctx ends (a callback that ignores its context
// can hold a worker forever). Call it once no burst can start any more.
func (p *burstPool) close(ctx context.Context) {
	close(p.stop)
	_ = waitGroup(ctx, &p.wg)
}

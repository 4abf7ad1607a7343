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
// never holds up anyone else; at most maxIdle workers wait for work.
type burstPool struct {
	work    chan *client
	stop    chan struct{}
	shed    chan struct{} // ends one idle worker per receive
	idle    atomic.Int32
	maxIdle int32
	wg      sync.WaitGroup
}

func newBurstPool() *burstPool {
	return &burstPool{
		work:    make(chan *client),
		stop:    make(chan struct{}),
		shed:    make(chan struct{}),
		maxIdle: int32(4 * runtime.GOMAXPROCS(0)),
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
			p.idle.Add(-1)
		case <-p.stop:
			p.idle.Add(-1)
			return
		case <-p.shed:
			p.idle.Add(-1)
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

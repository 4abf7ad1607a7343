package helper

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// flusher writes fan-out frames. A fan-out does not write to each socket
// itself: it appends the shared frame to every recipient's queue and hands
// the recipients to the flusher, which writes each queue with one
// non-blocking sendmsg. When fan-outs come faster than the sockets are
// written (a busy server), several messages for a client coalesce into one
// system call, so the cost per delivered message falls as load rises instead
// of latency growing; this is what an event loop that drains its sockets once
// per turn gets for free. Single-recipient sends (replies, errors,
// `connected`) still write inline when nothing is pending.
//
// Clients are spread over one shard per processor; each shard has one
// goroutine, which sleeps while its list is empty.
type flusher struct {
	shards []flushShard
	next   atomic.Uint32
	stop   chan struct{}
	wg     sync.WaitGroup
}

type flushShard struct {
	mu   sync.Mutex
	list []*client
	kick chan struct{}
}

func newFlusher() *flusher {
	n := max(1, runtime.GOMAXPROCS(0))
	f := &flusher{shards: make([]flushShard, n), stop: make(chan struct{})}
	for i := range f.shards {
		f.shards[i].kick = make(chan struct{}, 1)
	}
	return f
}

// shardFor picks the shard of a new client.
func (f *flusher) shardFor() uint8 {
	return uint8(f.next.Add(1) % uint32(len(f.shards)))
}

func (f *flusher) start() {
	for i := range f.shards {
		f.wg.Add(1)
		go func(s *flushShard) {
			defer f.wg.Done()
			s.run(f.stop)
		}(&f.shards[i])
	}
}

// close stops the shard goroutines; whatever is still queued is left to
// the connections' own clean-up.
func (f *flusher) close() {
	close(f.stop)
	f.wg.Wait()
}

// add schedules c's queue for writing. The caller holds c.out.mu and has
// just set c.out.dirty.
func (f *flusher) add(c *client) {
	s := &f.shards[int(c.shard)%len(f.shards)]
	s.mu.Lock()
	s.list = append(s.list, c)
	first := len(s.list) == 1
	s.mu.Unlock()
	if first {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

func (s *flushShard) run(stop <-chan struct{}) {
	var batch []*client
	var iov []iovec
	for {
		select {
		case <-stop:
			return
		case <-s.kick:
		}
		// Let the fan-out that kicked us go on first: on a busy processor
		// it queues more frames per client, and a client's queued frames
		// go out in one write.
		runtime.Gosched()
		for {
			s.mu.Lock()
			batch, s.list = s.list, batch[:0]
			s.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			for _, c := range batch {
				c.flushQueued(&iov)
			}
			clear(batch)
		}
	}
}

//go:build linux && !386

package helper

import (
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// poller watches idle connections for input with one epoll instance, so an
// idle connection costs no goroutine: a goroutine is started for a
// connection only when it has something to read, and ends when it has read
// it. Registrations are one-shot and level-triggered: after a burst the
// connection is re-armed, and if input arrived meanwhile the event fires at
// once. Go's own netpoller keeps watching the same sockets for the writer
// goroutines and for reads inside a burst; the kernel allows a socket in
// several epoll sets.
//
// The epoll descriptor is itself registered with Go's netpoller (an epoll
// instance is readable while it has events), so the dispatching goroutine
// parks like any network read instead of blocking an OS thread in
// epoll_wait: no thread hand-off per event.
type poller struct {
	epfd int
	file *os.File        // epfd, as seen by Go's netpoller
	rc   syscall.RawConn // file's raw side, for waiting

	mu      sync.RWMutex
	clients []*client // indexed by fd

	// pollNow's state: one caller at a time, at most every pollNowEvery.
	polling  atomic.Bool
	lastPoll atomic.Int64 // unix nanoseconds
	events   []unix.EpollEvent

	done chan struct{}
}

// pollNowEvery spaces the polls that bursts make while the processor is
// busy: often enough that a quiet client's message is noticed within a
// fraction of a millisecond, rarely enough to cost nothing measurable.
const pollNowEvery = 100 * time.Microsecond

func newPoller() (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("websocket: epoll_create1: %w", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("websocket: epoll fd non-blocking: %w", err)
	}
	file := os.NewFile(uintptr(epfd), "fxws-epoll")
	rc, err := file.SyscallConn()
	if err != nil {
		_ = file.Close()
		return nil, fmt.Errorf("websocket: epoll fd: %w", err)
	}
	return &poller{epfd: epfd, file: file, rc: rc, events: make([]unix.EpollEvent, 64), done: make(chan struct{})}, nil
}

// run dispatches readiness events until close is called.
func (p *poller) run() {
	defer close(p.done)
	events := make([]unix.EpollEvent, 256)
	var n int
	var waitErr error
	collect := func(fd uintptr) bool {
		for {
			n, waitErr = unix.EpollWait(int(fd), events, 0)
			if waitErr == unix.EINTR {
				continue
			}
			// Nothing ready: park in Go's netpoller until the epoll
			// descriptor is readable.
			return waitErr != nil || n > 0
		}
	}
	for {
		if err := p.rc.Read(collect); err != nil || waitErr != nil {
			return // closed
		}
		p.dispatch(events[:n])
	}
}

func (p *poller) dispatch(events []unix.EpollEvent) {
	for i := range events {
		fd := int(events[i].Fd)
		p.mu.RLock()
		var c *client
		if fd < len(p.clients) {
			c = p.clients[fd]
		}
		p.mu.RUnlock()
		if c != nil {
			c.readable()
		}
	}
}

// pollNow dispatches the connections that are ready, without waiting. A
// burst calls it between messages: Go's scheduler looks at the network only
// when a processor runs out of work, or every 10 ms from its monitor
// thread, so on a saturated processor the dispatching goroutine would learn
// of a quiet client's message up to 10 ms late, and then queue behind the
// busy connections' bursts. Dispatched here, the burst starts next.
func (p *poller) pollNow(now int64) {
	if now-p.lastPoll.Load() < int64(pollNowEvery) || !p.polling.CompareAndSwap(false, true) {
		return
	}
	defer p.polling.Store(false)
	p.lastPoll.Store(now)
	n := 0
	// Control keeps the descriptor open (and its number unused) meanwhile.
	_ = p.rc.Control(func(fd uintptr) {
		n, _ = unix.EpollWait(int(fd), p.events, 0)
	})
	if n > 0 {
		p.dispatch(p.events[:n])
	}
}

// arm (re-)registers c's socket for one readiness event. It runs inside
// RawConn.Control so the descriptor cannot be closed, and its number reused
// by another connection, while it is being registered.
func (p *poller) arm(c *client) error {
	first := c.fd.Load() < 0
	var opErr error
	err := c.raw.rc.Control(func(fd uintptr) {
		if first {
			p.mu.Lock()
			if c.fd.Load() == fdForgotten {
				// The connection ended while this first arm was on its
				// way (a terminate from another goroutine): registered
				// now, it would stay in the table until its descriptor
				// number came back.
				p.mu.Unlock()
				opErr = net.ErrClosed
				return
			}
			if int(fd) >= len(p.clients) {
				grown := make([]*client, max(int(fd)+1, 2*len(p.clients)))
				copy(grown, p.clients)
				p.clients = grown
			}
			p.clients[fd] = c
			c.fd.Store(int32(fd))
			p.mu.Unlock()
		}
		ev := unix.EpollEvent{
			Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT,
			Fd:     int32(fd),
		}
		op := unix.EPOLL_CTL_MOD
		if first {
			op = unix.EPOLL_CTL_ADD
		}
		opErr = unix.EpollCtl(p.epfd, op, int(fd), &ev)
	})
	if err != nil {
		return err
	}
	return opErr
}

// forget drops c from the table; the kernel drops the registration itself
// when the socket closes.
func (p *poller) forget(c *client) {
	p.mu.Lock()
	fd := c.fd.Swap(fdForgotten)
	if fd >= 0 && int(fd) < len(p.clients) && p.clients[fd] == c {
		p.clients[fd] = nil
	}
	p.mu.Unlock()
}

// fdForgotten marks a client the poller has forgotten for good.
const fdForgotten = -2

// close stops run and releases the descriptor.
func (p *poller) close() {
	_ = p.file.Close()
	<-p.done
}

package redistest

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// ReplyCutter is a TCP proxy in front of Redis that, once armed, swallows
// the next integer reply Redis sends (a PUBLISH's: pub/sub messages are
// arrays or pushes) and closes that connection: the command was executed,
// its answer never arrives (a connection reset by a NAT or a load
// balancer between the app and Redis). It closes with the test.
type ReplyCutter struct {
	ln    net.Listener
	armed atomic.Bool
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

// NewReplyCutter starts a cutter in front of target (host:port).
func NewReplyCutter(t testing.TB, target string) *ReplyCutter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &ReplyCutter{ln: ln}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			a, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", target)
			if err != nil {
				a.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, a, b)
			p.mu.Unlock()
			p.wg.Add(2)
			go p.pipe(b, a, false)
			go p.pipe(a, b, true)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *ReplyCutter) pipe(dst, src net.Conn, cut bool) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if cut && buf[0] == ':' && p.armed.CompareAndSwap(true, false) {
				break
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
}

// Addr is the address to give the Redis client.
func (p *ReplyCutter) Addr() string { return p.ln.Addr().String() }

// Arm makes the cutter swallow the next integer reply and close its
// connection.
func (p *ReplyCutter) Arm() { p.armed.Store(true) }

// Armed reports whether the cutter waits for a reply still.
func (p *ReplyCutter) Armed() bool { return p.armed.Load() }

// Disarm lets replies through again.
func (p *ReplyCutter) Disarm() { p.armed.Store(false) }

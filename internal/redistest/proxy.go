package redistest

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy is a TCP proxy in front of a server. Freeze makes the connections
// open at that moment silently stop forwarding in both directions while
// staying open, as a network partition or a dead NAT entry does; new
// connections are forwarded normally. It is how tests simulate a
// subscription that dies without an error.
type Proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	links  map[*link]struct{}
	closed bool
	silent bool // new connections start frozen (Silence)
	wg     sync.WaitGroup

	trickleSize atomic.Int64 // bytes per write towards clients; 0: as read
	trickleGap  atomic.Int64 // pause between those writes, in nanoseconds
}

type link struct {
	a, b   net.Conn
	mu     sync.Mutex
	frozen bool
}

// NewProxy listens on a random local port and forwards to target. It is
// closed when the test ends.
func NewProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("redistest: proxy listen: %v", err)
	}
	p := &Proxy{ln: ln, target: target, links: make(map[*link]struct{})}
	p.wg.Add(1)
	go p.accept()
	tb.Cleanup(p.Close)
	return p
}

// Addr is where clients connect.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		a, err := p.ln.Accept()
		if err != nil {
			return
		}
		b, err := net.Dial("tcp", p.target)
		if err != nil {
			a.Close()
			continue
		}
		l := &link{a: a, b: b}
		p.mu.Lock()
		l.frozen = p.silent
		if p.closed {
			p.mu.Unlock()
			a.Close()
			b.Close()
			return
		}
		p.links[l] = struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pipe(l, a, b)
		go p.pipe(l, b, a)
	}
}

func (p *Proxy) pipe(l *link, dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			l.mu.Lock()
			frozen := l.frozen
			l.mu.Unlock()
			if !frozen {
				if werr := p.forward(l, dst, buf[:n]); werr != nil {
					err = werr
				}
			}
		}
		if err != nil {
			l.a.Close()
			l.b.Close()
			p.mu.Lock()
			delete(p.links, l)
			p.mu.Unlock()
			return
		}
	}
}

// forward writes b to dst, in Trickle's pieces when it heads for the client.
func (p *Proxy) forward(l *link, dst net.Conn, b []byte) error {
	size, gap := int(p.trickleSize.Load()), time.Duration(p.trickleGap.Load())
	if dst != l.a || size <= 0 {
		_, err := dst.Write(b)
		return err
	}
	for len(b) > 0 {
		n := min(size, len(b))
		if _, err := dst.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
		if len(b) > 0 {
			time.Sleep(gap)
		}
	}
	return nil
}

// Trickle makes every connection pass what the server sends in pieces of
// size bytes, gap apart, as a slow or congested link does: a large reply
// then takes a while to arrive in full. size 0 forwards normally again.
func (p *Proxy) Trickle(size int, gap time.Duration) {
	p.trickleGap.Store(int64(gap))
	p.trickleSize.Store(int64(size))
}

// Freeze stops forwarding on every connection open now, without closing
// them: bytes sent either way are swallowed.
func (p *Proxy) Freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for l := range p.links {
		l.mu.Lock()
		l.frozen = true
		l.mu.Unlock()
	}
}

// Silence is Freeze for the connections opened later too: the server is
// reachable but answers nothing, as across a partition.
func (p *Proxy) Silence() {
	p.mu.Lock()
	p.silent = true
	p.mu.Unlock()
	p.Freeze()
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	for l := range p.links {
		l.a.Close()
		l.b.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}

//go:build linux && !386

package helper

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"go.uber.org/zap"
)

// rawPair returns a client on the server end of a loopback TCP pair, with
// the raw fast path (sock set, raw non-nil), and the peer's end.
func rawPair(t *testing.T, h *WebSocketServerHelper) (*client, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			acc <- nil
			return
		}
		acc <- c
	}()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv := <-acc
	if srv == nil {
		t.Fatal("accept failed")
	}
	raw, sock := newRawConn(srv)
	if raw == nil {
		t.Fatal("no raw path")
	}
	c := &client{h: h, conn: srv, raw: raw, id: "c"}
	c.out.sock = sock
	c.fd.Store(-1)
	return c, peer
}

func bareHelper() *WebSocketServerHelper {
	h := &WebSocketServerHelper{opts: Options{}.withDefaults(), log: zap.NewNop(), flush: newFlusher()}
	h.flush.start()
	return h
}

// A frame pushed after another was handed to the client must not reach the
// peer before it. uncork used to let go of o.mu with the held frames still
// queued and neither dirty nor writing set, then write them: a send from
// another goroutine that got the lock in between took the fast path and
// overtook the held frames.
func TestUncorkKeepsFrameOrder(t *testing.T) {
	h := bareHelper()
	defer h.flush.close()
	c, peer := rawPair(t, h)
	defer peer.Close()
	defer c.conn.Close()

	const rounds = 200000
	var lastHeld atomic.Int64 // the last A frame whose push has returned
	lastHeld.Store(-1)
	var stop atomic.Bool
	violation := make(chan string, 1)
	readerDone := make(chan struct{})

	go func() {
		defer close(readerDone)
		br := bufio.NewReaderSize(peer, 64<<10)
		seenA := int64(-1)
		for {
			hdr, err := ws.ReadHeader(br)
			if err != nil {
				return
			}
			p := make([]byte, hdr.Length)
			if _, err := io.ReadFull(br, p); err != nil {
				return
			}
			s := string(p)
			switch {
			case strings.HasPrefix(s, "A"):
				n, _ := strconv.ParseInt(s[1:], 10, 64)
				if n != seenA+1 {
					select {
					case violation <- fmt.Sprintf("A frames out of order: got A%d after A%d", n, seenA):
					default:
					}
				}
				seenA = n
			case strings.HasPrefix(s, "B"):
				n, _ := strconv.ParseInt(s[1:], 10, 64)
				if n > seenA {
					select {
					case violation <- fmt.Sprintf("B frame sent after A%d's push returned arrived before A%d (peer had seen up to A%d)", n, n, seenA):
					default:
					}
				}
			default:
				select {
				case violation <- fmt.Sprintf("garbled frame %q", s):
				default:
				}
			}
		}
	}()

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // the burst: cork, answer, uncork
		defer wg.Done()
		defer stop.Store(true)
		for i := int64(0); i < rounds && !stop.Load(); i++ {
			c.cork()
			r := c.send(compileFrame(ws.OpText, []byte("A"+strconv.FormatInt(i, 10))))
			lastHeld.Store(i)
			c.uncork()
			if r != sent {
				t.Errorf("A%d: %v", i, r)
				return
			}
		}
	}()
	go func() { // another goroutine sending to the same client
		defer wg.Done()
		// One B for each A, sent as soon as A's push has returned: the
		// queue stays short (a B flood while the burst is held would
		// reach the backpressure limit), and each B races that A's
		// uncork.
		last := int64(-1)
		for !stop.Load() {
			n := lastHeld.Load()
			if n == last {
				runtime.Gosched()
				continue
			}
			last = n
			c.send(compileFrame(ws.OpText, []byte("B"+strconv.FormatInt(n, 10))))
		}
	}()
	wg.Wait()
	// Let everything drain.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c.out.mu.Lock()
		idle := !c.out.writing && len(c.out.queue) == 0
		c.out.mu.Unlock()
		if idle {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	_ = c.conn.Close()
	<-readerDone
	select {
	case v := <-violation:
		t.Fatal(v)
	default:
	}
}

// The worst of that window, replayed step by step: a send that gets the
// lock while held frames are queued but owned by nobody must join the
// queue. Sent directly and taken by the socket in part, its rest was queued
// behind the held frames, and the peer got one frame inside another.
func TestSendBetweenUncorkHalvesIsNotSpliced(t *testing.T) {
	h := bareHelper()
	defer h.flush.close()
	c, peer := rawPair(t, h)
	defer peer.Close()
	defer c.conn.Close()
	_ = c.conn.(*net.TCPConn).SetWriteBuffer(16 << 10)
	_ = peer.(*net.TCPConn).SetReadBuffer(16 << 10)

	// Fill the socket until the writer goroutine has to take over.
	filler := compileFrame(ws.OpText, []byte(strings.Repeat("F", 996)))
	total := 0
	for {
		if r := c.send(filler); r != sent {
			t.Fatal(r)
		}
		total += len(filler)
		c.out.mu.Lock()
		w := c.out.writing
		c.out.mu.Unlock()
		if w {
			break
		}
	}
	// Let the writer drain, leaving 20 000 bytes unread: the socket then has
	// some room, but not 512 KiB.
	if _, err := io.CopyN(io.Discard, peer, int64(total-20000)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the writer done", func() bool {
		c.out.mu.Lock()
		defer c.out.mu.Unlock()
		return !c.out.writing && len(c.out.queue) == 0
	})

	// The burst: cork, hold an answer, then uncork's first half.
	c.cork()
	c.send(compileFrame(ws.OpText, []byte("A")))
	c.rd.corked = false
	c.out.mu.Lock()
	c.out.corked = false
	c.out.mu.Unlock()
	// Another goroutine's send gets the lock here.
	big := compileFrame(ws.OpText, []byte(strings.Repeat("B", 512<<10)))
	if r := c.send(big); r != sent {
		t.Fatal(r)
	}
	// uncork's second half.
	iov := iovecs.Get().(*[]iovec)
	c.flushQueued(iov)
	iovecs.Put(iov)

	_ = peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.CopyN(io.Discard, peer, 20000); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(peer)
	var got []string
	for i := 0; i < 2; i++ {
		hdr, err := ws.ReadHeader(br)
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Length > 1<<20 {
			t.Fatalf("frame %d: garbled header %+v after %v", i, hdr, got)
		}
		p := make([]byte, hdr.Length)
		if _, err := io.ReadFull(br, p); err != nil {
			t.Fatal(err)
		}
		s := string(p)
		if s != "A" && s != strings.Repeat("B", 512<<10) {
			t.Fatalf("frame %d: garbled payload (len %d, %q...) after %v", i, len(s), s[:min(len(s), 20)], got)
		}
		got = append(got, s[:1])
	}
	if got[0] != "A" {
		t.Fatalf("frames out of order: %v", got)
	}
}

// The read side's end (readerExited) used to close the socket at once
// unless a writer goroutine owned it, dropping frames that waited for the
// flusher, and behind them the reply to the client's close. Replayed here:
// a fan-out frame waits for the flusher, the client's close is answered
// (readFrames: closeWith), the read side ends (finish: readerExited), then
// the flusher gets to the client.
func TestReaderExitDrainsTheFlusherQueue(t *testing.T) {
	h := &WebSocketServerHelper{opts: Options{}.withDefaults(), log: zap.NewNop(), flush: newFlusher()}
	c, peer := rawPair(t, h)
	defer peer.Close()
	defer c.conn.Close()

	if r := c.push(compileFrame(ws.OpText, []byte("fanout")), false, true, ""); r != sent {
		t.Fatal(r)
	}
	c.closeWith(ws.StatusNormalClosure, "")
	c.readerExited()
	h.flush.start() // the flusher's turn comes now
	defer h.flush.close()

	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(peer)
	var got []ws.OpCode
	for {
		hdr, err := ws.ReadHeader(br)
		if err != nil {
			t.Fatalf("connection ended (%v) after %v: the close reply never went out", err, got)
		}
		if _, err := io.CopyN(io.Discard, br, hdr.Length); err != nil {
			t.Fatal(err)
		}
		got = append(got, hdr.OpCode)
		if hdr.OpCode == ws.OpClose {
			return
		}
	}
}

// A connection that ended while its first arm was on its way (forget ran
// first, from a terminate on another goroutine) is not registered with the
// poller afterwards, where it would have stayed until its descriptor
// number came back.
func TestArmAfterForgetRegistersNothing(t *testing.T) {
	p, err := newPoller()
	if err != nil {
		t.Fatal(err)
	}
	go p.run()
	defer p.close()
	h := bareHelper()
	defer h.flush.close()
	c, peer := rawPair(t, h)
	defer peer.Close()
	defer c.conn.Close()

	p.forget(c)
	if err := p.arm(c); err == nil {
		t.Error("arm of a forgotten client succeeded")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for fd, held := range p.clients {
		if held == c {
			t.Fatalf("the forgotten client is in the poller's table at %d", fd)
		}
	}
}

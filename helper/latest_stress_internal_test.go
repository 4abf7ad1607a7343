//go:build linux && !386

package helper

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"go.uber.org/zap"
)

// Keyed and plain frames from several goroutines, some
// larger than writeBatch (split by the writer), fan-out or not, to a peer
// that reads in spurts; then a close. Every frame arrives whole, each
// goroutine's in order, no plain frame is lost, each key's last value
// arrives, the close frame is last, and the queue's accounting ends at 0.
func TestLatestQueueUnderConcurrentSendsCorksAndClose(t *testing.T) {
	for round := range 5 {
		t.Run(fmt.Sprint(round), func(t *testing.T) { latestStressRound(t, int64(round)) })
	}
}

func latestStressRound(t *testing.T, seed int64) {
	opts := Options{BackpressureLimit: 1 << 30}.withDefaults()
	h := &WebSocketServerHelper{opts: opts, log: zap.NewNop(), flush: newFlusher()}
	h.flush.start()
	defer h.flush.close()
	c, peer := rawPair(t, h)
	defer peer.Close()
	defer c.conn.Close()

	const G, N = 4, 300
	keys := []string{"", "", "a", "b"}
	type rec struct {
		plain int
		last  map[string]int
	}
	want := make([]rec, G)
	var wg sync.WaitGroup
	for g := range G {
		want[g].last = map[string]int{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(seed), uint64(g)))
			for i := range N {
				k := keys[r.IntN(len(keys))]
				size := 16 + r.IntN(2000)
				if r.IntN(20) == 0 {
					size = writeBatch + r.IntN(writeBatch)
				}
				p := make([]byte, size)
				binary.BigEndian.PutUint32(p[0:], uint32(g))
				binary.BigEndian.PutUint32(p[4:], uint32(i))
				p[8] = byte(len(k))
				copy(p[9:], k)
				for j := 9 + len(k); j < size; j++ {
					p[j] = byte(i + j)
				}
				if g == 0 && r.IntN(4) == 0 {
					c.cork() // goroutine 0 plays the reader's burst
				}
				if res := c.push(compileFrame(ws.OpText, p), false, r.IntN(2) == 0, gk(g, k)); res != sent {
					t.Errorf("push %d/%d: %v", g, i, res)
					return
				}
				if g == 0 && r.IntN(3) == 0 {
					c.uncork()
				}
				if k == "" {
					want[g].plain++
				} else {
					want[g].last[k] = i
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); c.uncork(); c.closeWith(ws.StatusNormalClosure, "bye"); close(done) }()

	_ = peer.SetReadDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(peer)
	lastSeq := make([]int, G)
	for g := range lastSeq {
		lastSeq[g] = -1
	}
	plain := make([]int, G)
	gotLast := make([]map[string]int, G)
	for g := range gotLast {
		gotLast[g] = map[string]int{}
	}
	r := rand.New(rand.NewPCG(uint64(seed), 99))
	for n := 0; ; n++ {
		if r.IntN(50) == 0 {
			time.Sleep(time.Millisecond)
		}
		hdr, err := ws.ReadHeader(br)
		if err != nil {
			t.Fatalf("frame %d: %v", n, err)
		}
		p := make([]byte, hdr.Length)
		if _, err := io.ReadFull(br, p); err != nil {
			t.Fatal(err)
		}
		if hdr.OpCode == ws.OpClose {
			break
		}
		if hdr.OpCode != ws.OpText || len(p) < 9 {
			t.Fatalf("frame %d: op %v len %d", n, hdr.OpCode, len(p))
		}
		g, i := int(binary.BigEndian.Uint32(p[0:])), int(binary.BigEndian.Uint32(p[4:]))
		if g >= G {
			t.Fatalf("frame %d: goroutine %d: a spliced frame", n, g)
		}
		k := string(p[9 : 9+int(p[8])])
		for j := 9 + len(k); j < len(p); j++ {
			if p[j] != byte(i+j) {
				t.Fatalf("frame %d (%d/%d): byte %d corrupt", n, g, i, j)
			}
		}
		if i <= lastSeq[g] {
			t.Fatalf("goroutine %d: %d after %d", g, i, lastSeq[g])
		}
		lastSeq[g] = i
		if k == "" {
			plain[g]++
		} else {
			gotLast[g][k] = i
		}
	}
	<-done
	for g := range G {
		if plain[g] != want[g].plain {
			t.Errorf("goroutine %d: %d plain frames of %d", g, plain[g], want[g].plain)
		}
		for k, i := range want[g].last {
			if gotLast[g][k] != i {
				t.Errorf("goroutine %d key %q: last %d, want %d", g, k, gotLast[g][k], i)
			}
		}
	}
	eventuallyInternal(t, func() bool {
		c.out.mu.Lock()
		defer c.out.mu.Unlock()
		return c.out.queued == 0 && len(c.out.queue) == 0
	})
	t.Logf("superseded %d", h.stats.superseded.Load())
}

func gk(g int, k string) string {
	if k == "" {
		return ""
	}
	return fmt.Sprintf("g%d-%s", g, k)
}

func eventuallyInternal(t *testing.T, cond func() bool) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	c := cond()
	t.Fatalf("queue accounting did not drain: %v", c)
}

// Command encload measures encrypted (or plain) broadcast throughput of a
// running server that follows the demo contract (tokens `valid-<user>`,
// POST /ws-api/broadcast): ours (examples/encrypted, examples/demo) or the
// original (shared/reference/start.sh), so both are measured by the same
// client in the same run.
//
// It connects -n clients (each with its own P-256 key when -encrypt), then
// posts -m broadcasts back to back and waits until every client has every
// message. It reports delivered messages per second and, given -pid, the
// server's CPU time per delivered message (from /proc). One delivery in
// -verify is decrypted and checked; the others are counted by their frame.
//
//	go run ./encryption/internal/encload -ws ws://127.0.0.1:3000/ws -rest http://127.0.0.1:3000 -n 1000 -m 50 -pid $PID
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxws/websocket/encryption"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

var (
	wsURL   = flag.String("ws", "ws://127.0.0.1:3000/ws", "WebSocket URL")
	restURL = flag.String("rest", "http://127.0.0.1:3000", "REST base URL (POST /ws-api/broadcast)")
	n       = flag.Int("n", 1000, "clients")
	m       = flag.Int("m", 50, "broadcasts")
	encrypt = flag.Bool("encrypt", true, "use the ECDH scheme")
	pid     = flag.Int("pid", 0, "server process id, for its CPU time")
	size    = flag.Int("size", 64, "bytes of text in each message's data")
	verify  = flag.Int("verify", 16, "decrypt and check one delivery in this many")
	conc    = flag.Int("conc", 100, "concurrent dials")
	label   = flag.String("label", "", "label printed with the result")
	timeout = flag.Duration("timeout", 5*time.Minute, "give up waiting for deliveries after this")
)

type conn struct {
	c       net.Conn
	r       *bufio.Reader
	session *encryption.Session
	// opaque: the server sent `connected` itself encrypted (the original
	// does), so the key is unknown; encrypted frames are counted unread.
	opaque bool
}

var (
	delivered atomic.Int64
	bad       atomic.Int64
	verified  atomic.Int64
	opaque    atomic.Int64
)

func main() {
	flag.Parse()
	ctx := context.Background()
	conns := make([]*conn, *n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, *conc)
	var dialErr atomic.Value
	start := time.Now()
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := dial(ctx, i)
			if err != nil {
				dialErr.Store(err)
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	if err, _ := dialErr.Load().(error); err != nil {
		log.Fatalf("dial: %v", err)
	}
	log.Printf("%d clients connected in %v", *n, time.Since(start).Round(time.Millisecond))
	for i, c := range conns {
		go c.read(i)
	}

	text := strings.Repeat("x", *size)
	post := func(seq int) {
		body := fmt.Sprintf(`{"event":"bench","data":{"seq":%d,"text":%q}}`, seq, text)
		resp, err := http.Post(*restURL+"/ws-api/broadcast", "application/json", strings.NewReader(body))
		if err != nil {
			log.Fatalf("broadcast: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	waitFor := func(want int64) time.Duration {
		t0 := time.Now()
		deadline := t0.Add(*timeout)
		for delivered.Load() < want {
			if time.Now().After(deadline) {
				log.Fatalf("only %d of %d deliveries after %v", delivered.Load(), want, *timeout)
			}
			time.Sleep(time.Millisecond)
		}
		return time.Since(t0)
	}
	// Warm up: one message to everybody.
	post(-1)
	waitFor(int64(*n))

	cpu0 := cpuTime(*pid)
	t0 := time.Now()
	for i := range *m {
		post(i)
	}
	want := int64(*n) * int64(*m+1)
	waitFor(want)
	elapsed := time.Since(t0)
	cpu := cpuTime(*pid) - cpu0
	deliveries := float64(*n) * float64(*m)
	mode := "plain"
	if *encrypt {
		mode = "encrypted"
	}
	fmt.Printf("%s %s clients=%d messages=%d deliveries=%.0f elapsed=%v rate=%.0f msg/s",
		*label, mode, *n, *m, deliveries, elapsed.Round(time.Millisecond), deliveries/elapsed.Seconds())
	if *pid > 0 {
		fmt.Printf(" serverCPU=%v cpu/msg=%.2fµs", cpu.Round(time.Millisecond), float64(cpu.Microseconds())/deliveries)
	}
	fmt.Printf(" verified=%d bad=%d", verified.Load(), bad.Load())
	if opaque.Load() > 0 {
		fmt.Printf(" (%d clients got `connected` encrypted, as the original sends it: frames counted, not decrypted)", opaque.Load())
	}
	fmt.Println()
	if bad.Load() > 0 {
		os.Exit(1)
	}
}

func dial(ctx context.Context, i int) (*conn, error) {
	nc, br, _, err := ws.Dial(ctx, *wsURL)
	if err != nil {
		return nil, err
	}
	c := &conn{c: nc, r: bufio.NewReaderSize(nc, 4096)}
	if br != nil {
		c.r = br
	}
	auth := map[string]string{"token": "valid-u" + strconv.Itoa(i)}
	var priv *ecdh.PrivateKey
	if *encrypt {
		priv, _ = ecdh.P256().GenerateKey(rand.Reader)
		auth["publicKey"] = encryption.EncodePublicKey(priv.PublicKey())
	}
	msg, _ := json.Marshal(map[string]any{"event": "authenticate", "data": auth})
	if err := wsutil.WriteClientText(nc, msg); err != nil {
		return nil, err
	}
	for {
		payload, err := c.frame()
		if err != nil {
			return nil, fmt.Errorf("client %d: %w", i, err)
		}
		var ev struct {
			Event string `json:"event"`
			Data  struct {
				ServerPublicKey string `json:"serverPublicKey"`
				Salt            string `json:"salt"`
			} `json:"data"`
		}
		if *encrypt && bytes.HasPrefix(payload, encPrefix) {
			c.opaque = true
			opaque.Add(1)
			return c, nil
		}
		if json.Unmarshal(payload, &ev) != nil || ev.Event != "connected" {
			if ev.Event == "error" {
				return nil, fmt.Errorf("client %d: %s", i, payload)
			}
			continue
		}
		if *encrypt {
			peer, err := encryption.ParsePublicKey(ev.Data.ServerPublicKey)
			if err != nil {
				return nil, err
			}
			salt, err := encryption.DecodeBase64(ev.Data.Salt)
			if err != nil {
				return nil, err
			}
			key, err := encryption.DeriveKey(priv, peer, salt, encryption.DefaultHKDFInfo)
			if err != nil {
				return nil, err
			}
			if c.session, err = encryption.NewSession(key); err != nil {
				return nil, err
			}
		}
		return c, nil
	}
}

// frame reads one data frame's payload, answering pings.
func (c *conn) frame() ([]byte, error) {
	for {
		h, err := ws.ReadHeader(c.r)
		if err != nil {
			return nil, err
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(c.r, p); err != nil {
			return nil, err
		}
		switch h.OpCode {
		case ws.OpPing:
			_ = ws.WriteFrame(c.c, ws.MaskFrame(ws.NewPongFrame(p)))
		case ws.OpClose:
			return nil, errors.New("closed by server")
		case ws.OpText, ws.OpBinary:
			return p, nil
		}
	}
}

var (
	encPrefix   = []byte(`{"event":"encrypted"`)
	benchMarker = []byte(`"bench"`)
)

func (c *conn) read(i int) {
	count := 0
	for {
		p, err := c.frame()
		if err != nil {
			return
		}
		if c.opaque {
			if bytes.HasPrefix(p, encPrefix) {
				delivered.Add(1)
			}
			continue
		}
		if c.session == nil {
			if bytes.Contains(p, benchMarker) {
				delivered.Add(1)
			}
			continue
		}
		if !bytes.HasPrefix(p, encPrefix) {
			continue
		}
		count++
		if (count+i)%*verify == 0 {
			var msg struct {
				Data json.RawMessage `json:"data"`
			}
			if json.Unmarshal(p, &msg) != nil {
				bad.Add(1)
				continue
			}
			ev, _, _, err := c.session.DecryptMessage(msg.Data)
			if err != nil {
				bad.Add(1)
				continue
			}
			if ev != "bench" {
				continue
			}
			verified.Add(1)
		}
		delivered.Add(1)
	}
}

// cpuTime is utime+stime of a process, from /proc/<pid>/stat.
func cpuTime(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		log.Fatalf("server CPU: %v", err)
	}
	// Fields after the parenthesised command name; utime and stime are
	// fields 14 and 15 (1-based), in clock ticks (100 Hz on Linux).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

package websocket_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxws/websocket/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// loadingRedis is a proxy to a real Redis that answers every command with
// "-LOADING ..." until loadingFor has passed since it started, as a Redis
// that is reading its dataset back after a restart does; after that it
// forwards to the real one.
func loadingRedis(t *testing.T, upstream string, loadingFor time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(loadingFor)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	track := func(c net.Conn) { mu.Lock(); conns = append(conns, c); mu.Unlock() }
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			track(c)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					cmd, err := readCommand(br)
					if err != nil {
						return
					}
					if time.Now().Before(until) {
						_, _ = io.WriteString(c, "-LOADING Redis is loading the dataset in memory\r\n")
						continue
					}
					up, err := net.Dial("tcp", upstream)
					if err != nil {
						return
					}
					track(up)
					defer up.Close()
					_, _ = up.Write(cmd)
					wg.Add(1)
					go func() { defer wg.Done(); _, _ = io.Copy(c, up); _ = c.Close() }()
					_, _ = io.Copy(up, br)
					_ = up.Close()
					return
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// readCommand reads one RESP array of bulk strings and returns its bytes.
func readCommand(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(line, "*") {
		return nil, fmt.Errorf("not an array: %q", line)
	}
	n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
	if err != nil {
		return nil, err
	}
	out := []byte(line)
	for range n {
		hdr, err := br.ReadString('\n')
		if err != nil {
			return nil, err
		}
		size, err := strconv.Atoi(strings.TrimSpace(hdr[1:]))
		if err != nil {
			return nil, err
		}
		body := make([]byte, size+2)
		if _, err := io.ReadFull(br, body); err != nil {
			return nil, err
		}
		out = append(append(out, hdr...), body...)
	}
	return out, nil
}

// A Redis that is coming up after a restart answers LOADING while it reads
// its dataset back: the module waits for it, as the emitter does, although
// LOADING is an error answer. (From a review: the first version of the
// wait failed the start at once on it.)
func TestRedisLoadingWaitedForOnStart(t *testing.T) {
	r := redistest.Start(t)
	addr := loadingRedis(t, r.Addr(), 700*time.Millisecond)
	rdb := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { _ = rdb.Close() })
	app := newRedisApp(t, rdb)
	ctx := ctxT(t)
	start := time.Now()
	if err := app.Start(ctx); err != nil {
		t.Fatalf("start while Redis loaded its dataset failed after %v (RedisPingTimeout 5 s): %v", time.Since(start), err)
	}
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

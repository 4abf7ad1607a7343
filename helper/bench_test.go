package helper_test

// Benchmarks of the server's hot path over real loopback sockets. The client
// side of every connection lives in a child process (child_test.go) that
// drains its sockets with plain reads (or holds them idle), so the figures
// are the server's own: its CPU (getrusage of this process), its heap and
// stacks (runtime.MemStats), one file per connection.
//
//	make bench BENCH='Broadcast|IdleConnection' PKGS=./helper/
//
// Figures, no assertions.

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fxws/websocket/helper"
)

// benchServer serves a helper for n connections of the child process.
type benchServer struct {
	h   *helper.WebSocketServerHelper
	srv *httptest.Server
	url string
}

func newBenchServerOn(tb testing.TB, tr transport) *benchServer {
	tb.Helper()
	h, err := helper.New(helper.Config{
		Options: helper.Options{
			AuthTimeout:       time.Minute,
			HeartbeatInterval: time.Hour,
			HeartbeatTimeout:  time.Hour,
			IdleTimeout:       time.Hour,
			WriteTimeout:      time.Minute,
			DisablePoller:     tr == rawGoroutine,
		},
		// Accepts every client as user "bench" with no metadata, so the
		// memory figure is the server's own, not the application's.
		Handlers: helper.Handlers{Authenticate: func(context.Context, helper.AuthenticateRequest) (*helper.AuthResult, error) {
			return &helper.AuthResult{UserID: "bench"}, nil
		}},
	})
	if err != nil {
		tb.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	if tr == wrappedConn {
		srv.Listener = plainListener{srv.Listener}
	}
	srv.Start()
	return &benchServer{h: h, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http") + h.Path()}
}

func (s *benchServer) close(tb testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.h.Shutdown(ctx); err != nil {
		tb.Errorf("Shutdown: %v", err)
	}
	s.srv.Close()
}

// waitAuthenticated waits until n clients are authenticated.
func (s *benchServer) waitAuthenticated(tb testing.TB, n int) {
	tb.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for s.h.Stats().Authenticated < n {
		if time.Now().After(deadline) {
			tb.Fatalf("only %d of %d clients authenticated", s.h.Stats().Authenticated, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitBytes waits until the child has read at least want bytes.
func waitBytes(tb testing.TB, ch *child, want int64) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for ch.bytesRead(tb) < want {
		if time.Now().After(deadline) {
			tb.Fatalf("child read %d of %d bytes", ch.bytesRead(tb), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// settledBytes waits until the child's byte count stops moving (the
// `connected` frames have all arrived) and returns it.
func settledBytes(tb testing.TB, ch *child) int64 {
	last := int64(-1)
	for {
		n := ch.bytesRead(tb)
		if n == last {
			return n
		}
		last = n
		time.Sleep(100 * time.Millisecond)
	}
}

type benchNews struct {
	Seq  int    `json:"seq"`
	Text string `json:"text"`
}

// BenchmarkBroadcast: one Broadcast to every one of N authenticated
// connections, timed until the child has read every byte. Per delivered
// message: wall ns, server CPU ns, allocations and bytes. The raw fast path
// at 1k and 10k connections; the portable fallback (conns that are not a
// syscall.Conn, e.g. TLS) at 1k for comparison.
func BenchmarkBroadcast(b *testing.B) {
	for _, run := range []struct {
		n  int
		tr transport
	}{{1000, rawSocket}, {10000, rawSocket}, {1000, wrappedConn}} {
		n := run.n
		s := newBenchServerOn(b, run.tr)
		ch := startChild(b, "drain", s.url, n)
		s.waitAuthenticated(b, n)
		base := settledBytes(b, ch)
		msg := benchNews{Seq: 1, Text: "hello, world"}
		frameLen := int64(len(`{"event":"bench","data":{"seq":1,"text":"hello, world"}}`) + 2)
		name := fmt.Sprintf("conns=%d", n)
		if run.tr == wrappedConn {
			name += "/fallback"
		}
		// back-to-back: broadcasts as fast as the server takes them (frames
		// of successive messages may share a write); paced: each broadcast
		// is fully read before the next (one write per message and socket).
		for _, paced := range []bool{false, true} {
			mode := "/back-to-back"
			if paced {
				mode = "/paced"
			}
			b.Run(name+mode, func(b *testing.B) {
				var ms0, ms1 runtime.MemStats
				runtime.ReadMemStats(&ms0)
				cpu0 := processCPU()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if got, err := s.h.Broadcast("bench", msg); err != nil || got != n {
						b.Fatalf("broadcast reached %d (%v)", got, err)
					}
					if paced {
						base += int64(n) * frameLen
						waitBytes(b, ch, base)
					}
				}
				if !paced {
					base += int64(b.N) * int64(n) * frameLen
					waitBytes(b, ch, base)
				}
				b.StopTimer()
				cpu := processCPU() - cpu0
				runtime.ReadMemStats(&ms1)
				msgs := float64(b.N) * float64(n)
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/msgs, "ns/msg")
				b.ReportMetric(float64(cpu.Nanoseconds())/msgs, "cpu-ns/msg")
				b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/msgs, "allocs/msg")
				b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/msgs, "B/msg")
			})
		}
		ch.stop()
		s.close(b)
	}
}

// BenchmarkIdleConnectionMemory: heap and stack held per idle authenticated
// connection, over FXWS_IDLE_CONNS (default 10 000) real loopback
// connections whose client side is another process; with the epoll poller
// (the default on Linux) and with a read goroutine per connection. Each
// sub-benchmark measures once whatever b.N is.
func BenchmarkIdleConnectionMemory(b *testing.B) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("FXWS_IDLE_CONNS")); err == nil && v > 0 {
		n = v
	}
	for _, tr := range []transport{rawSocket, rawGoroutine} {
		name := "poller"
		if tr == rawGoroutine {
			name = "goroutine-per-conn"
		}
		b.Run(name, func(b *testing.B) {
			s := newBenchServerOn(b, tr)
			defer s.close(b)
			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.GC()
			runtime.ReadMemStats(&m0)
			g0 := runtime.NumGoroutine()
			ch := startChild(b, "idle", s.url, n)
			defer ch.stop()
			s.waitAuthenticated(b, n)
			time.Sleep(500 * time.Millisecond) // let the upgrade and auth transients go
			runtime.GC()
			runtime.GC()
			runtime.ReadMemStats(&m1)
			g1 := runtime.NumGoroutine()
			per := func(a, z uint64) float64 { return (float64(z) - float64(a)) / float64(n) }
			b.ReportMetric(per(m0.HeapInuse+m0.StackInuse, m1.HeapInuse+m1.StackInuse), "B/conn")
			b.ReportMetric(per(m0.HeapInuse, m1.HeapInuse), "heap-B/conn")
			b.ReportMetric(per(m0.StackInuse, m1.StackInuse), "stack-B/conn")
			b.ReportMetric(per(m0.Sys, m1.Sys), "sys-B/conn")
			b.ReportMetric(float64(g1-g0)/float64(n), "goroutines/conn")
			b.ReportMetric(float64(n), "conns")
			for i := 0; i < b.N; i++ {
			}
		})
	}
}

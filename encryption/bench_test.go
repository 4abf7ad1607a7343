package encryption_test

import (
	"bufio"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fxws/websocket/encryption"
	"github.com/fxws/websocket/helper"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// BenchmarkBroadcast broadcasts to 1 000 local clients, plain and
// encrypted, over real sockets in this process. It reports delivered
// messages per second and the process's CPU time per delivered message
// (server and the in-process readers together; encryption/internal/encload
// measures the server alone, against the original too).
func BenchmarkBroadcast(b *testing.B) {
	for _, clients := range []int{1000} {
		for _, encrypted := range []bool{false, true} {
			name := fmt.Sprintf("clients=%d/plain", clients)
			if encrypted {
				name = fmt.Sprintf("clients=%d/encrypted", clients)
			}
			b.Run(name, func(b *testing.B) { benchBroadcast(b, clients, encrypted) })
		}
	}
}

func benchBroadcast(b *testing.B, clients int, encrypted bool) {
	enc := encryption.NewECDH(encryption.Options{})
	handlers := helper.Handlers{
		Authenticate: func(context.Context, helper.AuthenticateRequest) (*helper.AuthResult, error) {
			return &helper.AuthResult{}, nil
		},
	}
	if encrypted {
		handlers = enc.Handlers(handlers)
	}
	h, err := helper.New(helper.Config{Options: helper.Options{RequireEncryption: encrypted}, Handlers: handlers})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := h.Start(ctx); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
	var got atomic.Int64
	var readers sync.WaitGroup
	var conns []io.Closer
	for range clients {
		c, br, _, err := ws.Dial(ctx, url)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
		data := map[string]string{}
		if encrypted {
			priv, _ := ecdh.P256().GenerateKey(rand.Reader)
			data["publicKey"] = encryption.EncodePublicKey(priv.PublicKey())
		}
		msg, _ := json.Marshal(map[string]any{"event": "authenticate", "data": data})
		if err := wsutil.WriteClientText(c, msg); err != nil {
			b.Fatal(err)
		}
		var r io.Reader = c
		if br != nil {
			r = br
		}
		r = bufio.NewReaderSize(r, 8192)
		readers.Add(1)
		go func() {
			defer readers.Done()
			var buf []byte
			for {
				hd, err := ws.ReadHeader(r)
				if err != nil {
					return
				}
				if int64(cap(buf)) < hd.Length {
					buf = make([]byte, hd.Length)
				}
				if _, err := io.ReadFull(r, buf[:hd.Length]); err != nil {
					return
				}
				got.Add(1) // connected, then one per broadcast
			}
		}()
	}
	wait := func(n int64) {
		deadline := time.Now().Add(time.Minute)
		for got.Load() < n {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d frames", got.Load(), n)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	wait(int64(clients))
	data := map[string]any{"seq": 1, "text": strings.Repeat("x", 64)}
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if _, err := h.Broadcast("bench", data); err != nil {
			b.Fatal(err)
		}
	}
	wait(int64(clients) * int64(b.N+1))
	elapsed := time.Since(start)
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) * time.Nanosecond
	deliveries := float64(clients) * float64(b.N)
	b.ReportMetric(deliveries/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/deliveries, "cpu-ns/msg")

	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_ = h.Shutdown(sctx)
	for _, c := range conns {
		_ = c.Close()
	}
	readers.Wait()
	srv.Close()
}

// BenchmarkTransform is the outbound transformer alone: one seal of a small
// message for one client.
func BenchmarkTransform(b *testing.B) {
	e := encryption.NewECDH(encryption.Options{})
	priv, _ := ecdh.P256().GenerateKey(rand.Reader)
	req, _ := json.Marshal(map[string]string{"publicKey": encryption.EncodePublicKey(priv.PublicKey())})
	if _, err := e.Handshake(context.Background(), helper.HandshakeRequest{ClientID: "c", Data: req}); err != nil {
		b.Fatal(err)
	}
	out := helper.OutboundRequest{Client: helper.ClientView{ID: "c"}, Event: "bench",
		Data: json.RawMessage(`{"seq":1,"text":"` + strings.Repeat("x", 64) + `"}`)}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.Transform(context.Background(), out); err != nil {
				b.Fatal(err)
			}
		}
	})
}

package helper

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/fxws/websocket/internal/wsdeflate"
	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
)

// compressMessage compresses p as a permessage-deflate sender does: one
// sync-flushed stream without its last 4 bytes.
func compressMessage(t testing.TB, p []byte, level int) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := flate.NewWriter(&b, level)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write(p)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	out := b.Bytes()
	if !bytes.HasSuffix(out, []byte{0, 0, 0xff, 0xff}) {
		t.Fatalf("flush did not end with the sync marker: % x", out[len(out)-4:])
	}
	return out[:len(out)-4]
}

func TestInflateMessage(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	json := func(n int) []byte {
		var b strings.Builder
		b.WriteString(`{"event":"chat","data":[`)
		for b.Len() < n {
			b.WriteString(`{"user":"u`)
			b.WriteString(string(rune('a' + rng.IntN(26))))
			b.WriteString(`","text":"hello"},`)
		}
		s := b.String()
		return []byte(s[:n])
	}
	random := func(n int) []byte {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		return p
	}
	const limit = 64 << 10
	for _, tc := range []struct {
		name string
		msg  []byte
	}{
		{"empty", nil},
		{"small", []byte(`{"event":"heartbeat"}`)},
		{"json 10 KiB", json(10 << 10)},
		{"json at the limit", json(limit)},
		{"incompressible 20 KiB", random(20 << 10)},
	} {
		for _, level := range []int{flate.NoCompression, flate.BestSpeed, flate.BestCompression} {
			out, err := inflateMessage(compressMessage(t, tc.msg, level), limit)
			if err != nil {
				t.Fatalf("%s, level %d: %v", tc.name, level, err)
			}
			if !bytes.Equal(*out, tc.msg) {
				t.Fatalf("%s, level %d: inflated %d bytes, want %d", tc.name, level, len(*out), len(tc.msg))
			}
			putFrameBuffer(out)
		}
	}

	// One byte over the limit, and a bomb of 100 MB of zeros in ~100 KB:
	// both stop at limit+1 bytes of output.
	if _, err := inflateMessage(compressMessage(t, json(limit+1), flate.BestSpeed), limit); err != errTooBig {
		t.Fatalf("limit+1: %v, want errTooBig", err)
	}
	if _, err := inflateMessage(wsdeflate.Bomb(100<<20), limit); err != errTooBig {
		t.Fatalf("bomb: %v, want errTooBig", err)
	}

	// A stream that ends with a final block (BFINAL) is complete as is.
	var final bytes.Buffer
	w, _ := flate.NewWriter(&final, flate.BestSpeed)
	_, _ = w.Write([]byte(`{"event":"final"}`))
	_ = w.Close()
	if out, err := inflateMessage(final.Bytes(), limit); err != nil || string(*out) != `{"event":"final"}` {
		t.Fatalf("final block: %v", err)
	}

	for _, junk := range [][]byte{
		{0xff, 0xfe, 0x01, 0x02, 0x03},
		{0x07}, // reserved block type
		compressMessage(t, json(1000), flate.BestSpeed)[:50], // cut mid-block
	} {
		if _, err := inflateMessage(junk, limit); err != errBadCompressed {
			t.Fatalf("junk % x: %v, want errBadCompressed", junk[:min(len(junk), 8)], err)
		}
	}
}

func TestInflateMessageAllocations(t *testing.T) {
	msg := compressMessage(t, bytes.Repeat([]byte(`{"event":"chat","data":"hello"}`), 40), flate.BestSpeed)
	out, _ := inflateMessage(msg, 1<<20) // warm the pools
	putFrameBuffer(out)
	allocs := testing.AllocsPerRun(200, func() {
		out, err := inflateMessage(msg, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		putFrameBuffer(out)
	})
	// The decompressor's Reset keeps its window and tables; what is left
	// is flate's own bookkeeping.
	t.Logf("allocations per inflated message: %.1f", allocs)
	if allocs > 4 {
		t.Fatalf("%.1f allocations per message; the pools are not being reused", allocs)
	}
}

func TestDeflateNegotiation(t *testing.T) {
	opt := func(s string) []httphead.Option {
		out, ok := httphead.ParseOptions([]byte(s), nil)
		if !ok {
			t.Fatalf("bad test header %q", s)
		}
		return out
	}
	for _, tc := range []struct{ offer, want string }{
		{"permessage-deflate", "permessage-deflate;server_no_context_takeover;client_no_context_takeover"},
		{"permessage-deflate; client_max_window_bits", "permessage-deflate;server_no_context_takeover;client_no_context_takeover"},
		{"permessage-deflate; client_max_window_bits=10; server_no_context_takeover", "permessage-deflate;server_no_context_takeover;client_no_context_takeover"},
		{"permessage-deflate; server_max_window_bits=10", "permessage-deflate;server_no_context_takeover;client_no_context_takeover;server_max_window_bits=10"},
		// Invalid offers are declined; a later valid one is taken.
		{"permessage-deflate; foo=1, permessage-deflate", "permessage-deflate;server_no_context_takeover;client_no_context_takeover"},
		{"permessage-deflate; server_max_window_bits", ""},
		{"permessage-deflate; server_max_window_bits=16", ""},
		{"permessage-deflate; client_no_context_takeover; client_no_context_takeover", ""},
		{"x-webkit-deflate-frame", ""},
		{"permessage-deflate; client_max_window_bits; client_max_window_bits", ""},
		{"permessage-deflate; client_max_window_bits=10; client_max_window_bits", ""},
		{"permessage-deflate; server_max_window_bits=010", ""},
		{"permessage-deflate; client_max_window_bits=09", ""},
		{`permessage-deflate; client_max_window_bits=""`, ""},
		{`permessage-deflate; client_max_window_bits="10"`, "permessage-deflate;server_no_context_takeover;client_no_context_takeover"},
		// Only the first acceptable offer.
		{"permessage-deflate; server_max_window_bits=9, permessage-deflate", "permessage-deflate;server_no_context_takeover;client_no_context_takeover;server_max_window_bits=9"},
	} {
		var n deflateNegotiation
		var got []string
		for _, o := range opt(tc.offer) {
			a, err := n.negotiate(o)
			if err != nil {
				t.Fatalf("%q: %v", tc.offer, err)
			}
			if a.Size() > 0 {
				var b bytes.Buffer
				_, _ = httphead.WriteOptions(&b, []httphead.Option{a}) // as the response header carries it
				got = append(got, b.String())
			}
		}
		if strings.Join(got, ",") != tc.want {
			t.Errorf("offer %q: accepted %q, want %q", tc.offer, got, tc.want)
		}
	}
}

// FuzzInflateMessage: any payload either inflates to what a plain
// decompressor makes of it, within the limit, or is refused with one of
// the two close errors; nothing panics.
func FuzzInflateMessage(f *testing.F) {
	f.Add(compressMessage(f, []byte(`{"event":"chat","data":"hello hello hello"}`), flate.BestSpeed))
	f.Add(compressMessage(f, bytes.Repeat([]byte("a"), 5000), flate.BestCompression))
	f.Add([]byte{0xff, 0xfe})
	f.Add([]byte{})
	const limit = 4096
	f.Fuzz(func(t *testing.T, p []byte) {
		out, err := inflateMessage(p, limit)
		r := flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader(wsdeflate.Tail)))
		want, werr := io.ReadAll(io.LimitReader(r, limit+1))
		switch {
		case err == nil:
			if werr != nil || !bytes.Equal(*out, want) {
				t.Fatalf("inflated %d bytes; a plain decompressor: %d bytes, %v", len(*out), len(want), werr)
			}
			putFrameBuffer(out)
		case err == errTooBig:
			if len(want) <= limit {
				t.Fatalf("too big, but a plain decompressor gives %d bytes (%v)", len(want), werr)
			}
		case errors.Is(err, errBadCompressed):
			if werr == nil && len(want) <= limit {
				t.Fatalf("refused, but a plain decompressor reads %d bytes", len(want))
			}
		default:
			t.Fatalf("unexpected error %v", err)
		}
	})
}

// BenchmarkInflateMessage: the cost of a compressed inbound message over a
// plain one, for chat-sized and large JSON.
func BenchmarkInflateMessage(b *testing.B) {
	for _, n := range []int{200, 2 << 10, 32 << 10} {
		var msg bytes.Buffer
		msg.WriteString(`{"event":"chat","data":[`)
		for i := 0; msg.Len() < n; i++ {
			msg.WriteString(`{"user":"user-`)
			msg.WriteString(strings.Repeat("x", i%7))
			msg.WriteString(`","text":"hello there","n":12345},`)
		}
		plain := msg.Bytes()[:n]
		z := compressMessage(b, plain, flate.BestSpeed)
		b.Run(strconv.Itoa(n)+"B", func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				out, err := inflateMessage(z, 1<<20)
				if err != nil {
					b.Fatal(err)
				}
				putFrameBuffer(out)
			}
		})
	}
}

func TestCompressFrame(t *testing.T) {
	for _, level := range []int{1, 6, 9} {
		for _, n := range []int{100, 300, 70 << 10} {
			msg := bytes.Repeat([]byte(`{"sensor":"s-0042","value":23.5},`), n/33+1)[:n]
			frame := compileFrame(ws.OpText, msg)
			z := compressFrame(frame, level)
			if z == nil {
				t.Fatalf("level %d, %d bytes: not compressed", level, n)
			}
			h, hl, err := parseHeader(z)
			if err != nil || !h.fin || h.rsv != 4 || h.op != ws.OpText || h.masked || int(h.length) != len(z)-hl {
				t.Fatalf("level %d, %d bytes: header %+v (%d) %v", level, n, h, hl, err)
			}
			out, err := inflateMessage(z[hl:], 1<<20)
			if err != nil || !bytes.Equal(*out, msg) {
				t.Fatalf("level %d, %d bytes: does not inflate back: %v", level, n, err)
			}
			putFrameBuffer(out)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	noise := make([]byte, 2000)
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	if z := compressFrame(compileFrame(ws.OpBinary, noise), 1); z != nil {
		t.Fatalf("incompressible payload sent compressed (%d bytes)", len(z))
	}
}

// snapshot is a document-like JSON body: records with ids, words and
// numbers, as a collaborative editor or a dashboard sends on join.
func snapshot(n int) []byte {
	words := strings.Fields("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu")
	rng := rand.New(rand.NewPCG(5, 6))
	b := []byte(`{"doc":"d-17","blocks":[`)
	for i := 0; len(b) < n; i++ {
		b = fmt.Appendf(b, `{"id":"b-%d","author":"user-%d","rev":%d,"text":"`, i, rng.IntN(40), rng.IntN(100000))
		for w := 0; w < 8+rng.IntN(20); w++ {
			b = append(b, words[rng.IntN(len(words))]...)
			b = append(b, ' ')
		}
		b = append(b, `"},`...)
	}
	return append(b[:len(b)-1], "]}"...)
}

// BenchmarkCompressLevel prints each level's frame size for a 256 KiB
// snapshot next to its CPU (Options.CompressLevel).
func BenchmarkCompressLevel(b *testing.B) {
	frame := compileFrame(ws.OpText, snapshot(256<<10))
	for _, level := range []int{1, 6, 9} {
		b.Run(fmt.Sprint("level=", level), func(b *testing.B) {
			var z []byte
			for b.Loop() {
				z = compressFrame(frame, level)
			}
			b.ReportMetric(float64(len(z))/float64(len(frame)), "ratio")
		})
	}
}

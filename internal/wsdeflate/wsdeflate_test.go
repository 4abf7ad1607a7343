package wsdeflate

import (
	"bytes"
	"compress/flate"
	"io"
	"testing"
)

func TestCompressInflatesBack(t *testing.T) {
	for _, msg := range [][]byte{nil, []byte(`{"event":"heartbeat"}`), bytes.Repeat([]byte("sensor 42 ok; "), 5000)} {
		z := Compress(msg)
		out, err := io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(z), bytes.NewReader(Tail))))
		if err != nil || !bytes.Equal(out, msg) {
			t.Fatalf("%d bytes: inflated %d bytes, %v", len(msg), len(out), err)
		}
	}
}

func TestBombInflatesToZeros(t *testing.T) {
	for _, n := range []int{1, 1000, 3<<20 + 5} {
		b := Bomb(n)
		r := flate.NewReader(bytes.NewReader(append(append([]byte(nil), b...), Tail...)))
		out, err := io.ReadAll(r)
		if err != nil || len(out) != n || bytes.Count(out, []byte{0}) != n {
			t.Fatalf("Bomb(%d): %d bytes, %v", n, len(out), err)
		}
		if n > 1<<20 && len(b) > n/500 {
			t.Fatalf("Bomb(%d) is %d bytes: not a bomb", n, len(b))
		}
	}
}

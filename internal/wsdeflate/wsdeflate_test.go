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

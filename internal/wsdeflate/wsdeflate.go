// Package wsdeflate holds the pieces of permessage-deflate (RFC 7692) that
// the server, the test kit and the load tools all need: compressing a
// message body on its own (no context takeover), the bytes that end a
// received body so that a decompressor sees a clean end of stream, and a
// compression bomb for the tests and the lab to throw at a server.
package wsdeflate

import (
	"bytes"
	"compress/flate"
	"sync"
)

// Tail ends every received message body before it is inflated: the 4
// bytes a sender strips (§7.2.2), then an empty final stored block.
var Tail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// writers are pooled per level: a compressor holds a few hundred KiB of
// tables, which no caller should allocate per message.
var writers = func() *[flate.BestCompression + 1]sync.Pool {
	p := new([flate.BestCompression + 1]sync.Pool)
	for level := flate.BestSpeed; level <= flate.BestCompression; level++ {
		p[level].New = func() any {
			w, _ := flate.NewWriter(nil, level)
			return w
		}
	}
	return p
}()

// Compress returns p as the body of a permessage-deflate message: p
// compressed on its own at BestSpeed, the sync flush's last 4 bytes
// stripped. The result is a new slice.
func Compress(p []byte) []byte { return CompressLevel(p, flate.BestSpeed) }

// CompressLevel is Compress at a flate level from BestSpeed (1) to
// BestCompression (9); other levels mean BestSpeed.
func CompressLevel(p []byte, level int) []byte {
	if level < flate.BestSpeed || level > flate.BestCompression {
		level = flate.BestSpeed
	}
	var b bytes.Buffer
	b.Grow(len(p)/2 + 64)
	w := writers[level].Get().(*flate.Writer)
	w.Reset(&b)
	_, _ = w.Write(p)
	_ = w.Flush() // writing to a bytes.Buffer cannot fail
	writers[level].Put(w)
	return bytes.TrimSuffix(b.Bytes(), Tail[:4])
}

// Bomb returns the body of a permessage-deflate message that inflates to n
// zero bytes: about a thousandth of n, compressed at BestCompression.
func Bomb(n int) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestCompression)
	zeros := make([]byte, min(n, 1<<20))
	for left := n; left > 0; left -= len(zeros) {
		_, _ = w.Write(zeros[:min(left, len(zeros))])
	}
	_ = w.Flush()
	return bytes.TrimSuffix(b.Bytes(), Tail[:4])
}

package main

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxws/websocket/internal/wsdeflate"
	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
)

// ecdhInfo is the HKDF info string of the Ignis ECDH helper.
const ecdhInfo = "ignis-ecdh-p256-aes-256-gcm-v1"

// benchEvent is the event name of every message the tool publishes.
const benchEvent = "bench"

// Keys of the bench payload. They are unusual on purpose: the receive path
// finds them with a byte search instead of decoding JSON, so one load core
// can follow a server that delivers hundreds of thousands of messages a second.
var (
	keySeq = []byte(`"bseq":`)
	keyTS  = []byte(`"bts":`)
)

// benchClient is one load connection: one reader goroutine, writes under a
// mutex (the heartbeat loop and, in echo mode, the reader itself write).
type benchClient struct {
	w     *worker
	index int
	urlIx int
	room  int // index into the worker's rooms, -1 for none
	conn  net.Conn
	br    *bufio.Reader
	id    string // server-assigned client id

	wmu sync.Mutex

	// Encryption: aead is set when the server sent its key in the plain
	// connected event (ours); opaque is set when the first frame after
	// authenticate was already encrypted (the original), in which case
	// messages are counted by arrival order only.
	priv   *ecdh.PrivateKey
	aead   cipher.AEAD
	opaque bool

	// Measurement state, touched only by the reader goroutine between
	// start and stop (the worker reads it after the reader is quiet or
	// through atomics).
	seen     []uint64
	distinct atomic.Int64
	dups     atomic.Int64
	opaqueN  int

	closed atomic.Bool

	// deflate: permessage-deflate was negotiated; text messages go out
	// compressed, each on its own, and compressed ones from the server
	// are inflated through zin into zout.
	deflate bool
	zin     bytes.Reader
	zraw    []byte
	zout    []byte
}

// decompressors are shared by the clients of a load process.
var decompressors = sync.Pool{New: func() any { return flate.NewReader(bytes.NewReader(nil)) }}

// inflate returns the message compressed in p, in the client's own buffer
// (valid until the next call).
func (c *benchClient) inflate(p []byte) ([]byte, error) {
	// p may be the caller's reused buffer, which can be zout itself.
	c.zraw = append(append(c.zraw[:0], p...), wsdeflate.Tail...)
	c.zin.Reset(c.zraw)
	fr := decompressors.Get().(io.ReadCloser)
	defer decompressors.Put(fr)
	if err := fr.(flate.Resetter).Reset(&c.zin, nil); err != nil {
		return nil, err
	}
	out := c.zout[:0]
	for {
		if len(out) == cap(out) {
			out = append(out, 0)[:len(out)]
		}
		n, err := fr.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		if err == io.EOF {
			c.zout = out
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("inflate: %w", err)
		}
	}
}

// dial connects, authenticates and waits for connected. It runs on one of the
// worker's dialing goroutines; the reader goroutine starts afterwards.
func (c *benchClient) dial(ctx context.Context, url string, src net.IP, token string, encrypted, deflate bool, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := ws.Dialer{
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nd := net.Dialer{Control: bindNoPort}
			if src != nil {
				nd.LocalAddr = &net.TCPAddr{IP: src}
			}
			return nd.DialContext(ctx, network, addr)
		},
	}
	if deflate {
		// Without context takeover on the server's side, every compressed
		// message inflates on its own.
		d.Extensions = []httphead.Option{wsflate.Parameters{ClientMaxWindowBits: 1, ServerNoContextTakeover: true}.Option()}
	}
	conn, br, hs, err := d.Dial(ctx, url)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	for _, x := range hs.Extensions {
		var p wsflate.Parameters
		if string(x.Name) == wsflate.ExtensionName && p.Parse(x) == nil {
			// Go's compressor writes for a 32 KiB window only.
			c.deflate = p.ServerNoContextTakeover && (!p.ClientMaxWindowBits.Defined() || p.ClientMaxWindowBits == 15)
		}
	}
	if deflate && !c.deflate {
		_ = conn.Close()
		return errors.New("the server did not accept permessage-deflate without context takeover at a full client window")
	}
	c.conn = conn
	if br == nil {
		br = bufio.NewReaderSize(conn, 512)
	}
	c.br = br
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	auth := map[string]any{"token": token}
	if encrypted {
		c.priv, err = ecdh.P256().GenerateKey(rand.Reader)
		if err != nil {
			return fmt.Errorf("keygen: %w", err)
		}
		auth["publicKey"] = base64.StdEncoding.EncodeToString(c.priv.PublicKey().Bytes())
	}
	msg, _ := json.Marshal(map[string]any{"event": "authenticate", "data": auth})
	if err := c.write(msg); err != nil {
		return fmt.Errorf("authenticate: %w", err)
	}
	var frame []byte
	for {
		op, payload, err := c.readFrame(frame)
		if err != nil {
			return fmt.Errorf("wait connected: %w", err)
		}
		frame = payload[:0]
		switch op {
		case ws.OpClose:
			code, reason := closeInfo(payload)
			return fmt.Errorf("closed %d %s", code, reason)
		case ws.OpPing:
			_ = c.writeOp(ws.OpPong, payload)
			continue
		case ws.OpText:
		default:
			continue
		}
		var m struct {
			Event string          `json:"event"`
			Data  json.RawMessage `json:"data"`
		}
		if json.Unmarshal(payload, &m) != nil {
			continue
		}
		switch m.Event {
		case "connected":
			var cd struct {
				ID              string `json:"id"`
				ServerPublicKey string `json:"serverPublicKey"`
				Salt            string `json:"salt"`
			}
			_ = json.Unmarshal(m.Data, &cd)
			c.id = cd.ID
			if encrypted {
				if err := c.deriveKey(cd.ServerPublicKey, cd.Salt); err != nil {
					return err
				}
			}
			_ = conn.SetDeadline(time.Time{})
			return nil
		case "encrypted":
			if encrypted && c.aead == nil {
				// The original encrypts even connected; the key cannot be
				// learnt, so count by order from here on.
				c.opaque = true
				_ = conn.SetDeadline(time.Time{})
				return nil
			}
		case "error":
			return fmt.Errorf("error event %s", bytes.TrimSpace(m.Data))
		}
	}
}

func (c *benchClient) deriveKey(pubB64, saltB64 string) error {
	pub, err1 := base64.StdEncoding.DecodeString(pubB64)
	salt, err2 := base64.StdEncoding.DecodeString(saltB64)
	if err1 != nil || err2 != nil || len(pub) == 0 {
		return errors.New("connected without a usable serverPublicKey/salt")
	}
	peer, err := ecdh.P256().NewPublicKey(pub)
	if err != nil {
		return fmt.Errorf("server public key: %w", err)
	}
	secret, err := c.priv.ECDH(peer)
	if err != nil {
		return fmt.Errorf("ecdh: %w", err)
	}
	key, err := hkdf.Key(sha256.New, secret, salt, ecdhInfo, 32)
	if err != nil {
		return fmt.Errorf("hkdf: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return err
	}
	c.aead, err = cipher.NewGCM(block)
	return err
}

// readFrame reads one whole message (continuation frames joined) into buf,
// inflating it when it came compressed.
func (c *benchClient) readFrame(buf []byte) (ws.OpCode, []byte, error) {
	var op ws.OpCode
	compressed := false
	buf = buf[:0]
	for {
		h, err := ws.ReadHeader(c.br)
		if err != nil {
			return 0, nil, err
		}
		if h.Length > 64<<20 {
			return 0, nil, fmt.Errorf("frame of %d bytes", h.Length)
		}
		n := len(buf)
		if cap(buf)-n < int(h.Length) {
			nb := make([]byte, n, n+int(h.Length))
			copy(nb, buf)
			buf = nb
		}
		buf = buf[:n+int(h.Length)]
		if _, err := io.ReadFull(c.br, buf[n:]); err != nil {
			return 0, nil, err
		}
		if h.Masked {
			ws.Cipher(buf[n:], h.Mask, 0)
		}
		if h.OpCode.IsControl() {
			return h.OpCode, buf[n:], nil
		}
		if h.OpCode != ws.OpContinuation {
			op = h.OpCode
			compressed = c.deflate && h.Rsv&0x4 != 0
		}
		if h.Fin {
			if compressed {
				p, err := c.inflate(buf)
				return op, p, err
			}
			return op, buf, nil
		}
	}
}

func closeInfo(p []byte) (int, string) {
	if len(p) < 2 {
		return 1005, ""
	}
	return int(p[0])<<8 | int(p[1]), string(p[2:])
}

func (c *benchClient) write(p []byte) error { return c.writeOp(ws.OpText, p) }

// writeOp sends one masked frame in a single write.
func (c *benchClient) writeOp(op ws.OpCode, p []byte) error {
	h := ws.Header{Fin: true, OpCode: op, Masked: true, Mask: ws.NewMask()}
	if c.deflate && op == ws.OpText {
		p = wsdeflate.Compress(p)
		h.Rsv = ws.Rsv(true, false, false)
	}
	h.Length = int64(len(p))
	buf := make([]byte, 0, ws.HeaderSize(h)+len(p))
	bw := bytes.NewBuffer(buf)
	_ = ws.WriteHeader(bw, h)
	start := bw.Len()
	bw.Write(p)
	out := bw.Bytes()
	ws.Cipher(out[start:], h.Mask, 0)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.conn.Write(out)
	return err
}

// readLoop runs until the connection ends; it records bench messages while
// the worker is measuring.
func (c *benchClient) readLoop() {
	w := c.w
	defer func() {
		c.closed.Store(true)
		w.live.Add(-1)
		if !w.closing.Load() {
			w.dropped.Add(1)
		}
	}()
	var buf []byte
	for {
		op, payload, err := c.readFrame(buf)
		if err != nil {
			return
		}
		switch op {
		case ws.OpText:
			buf = payload[:0]
			c.onText(payload)
		case ws.OpPing:
			_ = c.writeOp(ws.OpPong, payload)
		case ws.OpClose:
			code, reason := closeInfo(payload)
			w.noteClose(code, reason)
			_ = c.writeOp(ws.OpClose, payload[:min(2, len(payload))])
			_ = c.conn.Close()
			return
		}
	}
}

func (c *benchClient) onText(p []byte) {
	w := c.w
	now := time.Now().UnixMicro()
	if c.aead != nil || c.opaque {
		if !bytes.Contains(p, []byte(`"encrypted"`)) {
			return
		}
		if c.opaque {
			if w.measuring.Load() {
				seq := c.opaqueN
				c.opaqueN++
				c.recordSeq(seq, now, w.opaqueSendTime(c.room, seq))
			}
			return
		}
		pt, err := c.decrypt(p)
		if err != nil {
			w.decryptErrors.Add(1)
			return
		}
		p = pt
	}
	seq, ok1 := intAfter(p, keySeq)
	ts, ok2 := intAfter(p, keyTS)
	if !ok1 || !ok2 {
		return // not a bench message (heartbeat answers, errors…)
	}
	if w.echo {
		w.onEcho(c, now-ts)
		return
	}
	if w.measuring.Load() {
		c.recordSeq(int(seq), now, ts)
	}
}

// recordSeq counts one arrival of seq, detecting duplicates with a bitmap.
func (c *benchClient) recordSeq(seq int, now, sentAt int64) {
	w := c.w
	if seq < 0 || seq > 1<<26 {
		return
	}
	word := seq >> 6
	if word >= len(c.seen) {
		n := make([]uint64, max(word+1, 2*len(c.seen)))
		copy(n, c.seen)
		c.seen = n
	}
	bit := uint64(1) << (seq & 63)
	if c.seen[word]&bit != 0 {
		c.dups.Add(1)
		w.dups.Add(1)
		return
	}
	c.seen[word] |= bit
	c.distinct.Add(1)
	w.received.Add(1)
	w.lastRecv.Store(now)
	if sentAt > 0 {
		w.lat[c.urlIx].record(now - sentAt)
	}
}

func (c *benchClient) decrypt(p []byte) ([]byte, error) {
	var m struct {
		Data struct {
			IV string `json:"iv"`
			CT string `json:"ct"`
		} `json:"data"`
	}
	if err := json.Unmarshal(p, &m); err != nil {
		return nil, err
	}
	iv, err := base64.StdEncoding.DecodeString(m.Data.IV)
	if err != nil {
		return nil, err
	}
	ct, err := base64.StdEncoding.DecodeString(m.Data.CT)
	if err != nil {
		return nil, err
	}
	if len(iv) != c.aead.NonceSize() {
		return nil, errors.New("bad iv")
	}
	return c.aead.Open(ct[:0], iv, ct, nil)
}

// intAfter parses the integer that follows key in p.
func intAfter(p, key []byte) (int64, bool) {
	i := bytes.Index(p, key)
	if i < 0 {
		return 0, false
	}
	p = p[i+len(key):]
	j := 0
	for j < len(p) && (p[j] == '-' || (p[j] >= '0' && p[j] <= '9')) {
		j++
	}
	v, err := strconv.ParseInt(string(p[:j]), 10, 64)
	return v, err == nil
}

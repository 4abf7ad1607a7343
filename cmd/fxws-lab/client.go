package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/gobwas/ws/wsutil"
)

// wsClient is a minimal protocol client: frames in, frames out, no inbox.
type wsClient struct {
	conn net.Conn
	r    *bufio.Reader
	buf  []byte
	wmu  sync.Mutex
}

// closeErr is the server's close frame.
type closeErr struct {
	code   int
	reason string
}

func (e *closeErr) Error() string { return fmt.Sprintf("closed %d %q", e.code, e.reason) }

func dial(ctx context.Context, url string) (*wsClient, error) {
	c, _, err := dialWith(ctx, ws.Dialer{Timeout: 10 * time.Second}, url)
	return c, err
}

func dialWith(ctx context.Context, d ws.Dialer, url string) (*wsClient, ws.Handshake, error) {
	conn, br, hs, err := d.Dial(ctx, url)
	if err != nil {
		return nil, hs, err
	}
	c := &wsClient{conn: conn}
	if br != nil {
		c.r = br
	} else {
		c.r = bufio.NewReaderSize(conn, 16<<10)
	}
	return c, hs, nil
}

// dialCompressed is dial offering permessage-deflate without context
// takeover; a server that does not accept it is an error.
func dialCompressed(ctx context.Context, url string) (*wsClient, error) {
	c, hs, err := dialWith(ctx, ws.Dialer{Timeout: 10 * time.Second, Extensions: []httphead.Option{
		wsflate.Parameters{ServerNoContextTakeover: true, ClientNoContextTakeover: true}.Option(),
	}}, url)
	if err != nil {
		return nil, err
	}
	if len(hs.Extensions) == 0 {
		_ = c.conn.Close()
		return nil, errors.New("permessage-deflate not accepted (is PER_MESSAGE_DEFLATE=1 set?)")
	}
	return c, nil
}

// sendCompressed sends body (a permessage-deflate message body) as one
// text frame with RSV1 set.
func (c *wsClient) sendCompressed(body []byte) error {
	f := ws.NewTextFrame(body)
	f.Header.Rsv = ws.Rsv(true, false, false)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return ws.WriteFrame(c.conn, ws.MaskFrame(f))
}

func (c *wsClient) send(p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return wsutil.WriteClientText(c.conn, p)
}

// next returns the next data frame's payload (valid until the next call).
// Control frames other than close are skipped.
func (c *wsClient) next() ([]byte, error) {
	for {
		h, err := ws.ReadHeader(c.r)
		if err != nil {
			return nil, err
		}
		if int64(cap(c.buf)) < h.Length {
			c.buf = make([]byte, h.Length)
		}
		p := c.buf[:h.Length]
		if _, err := io.ReadFull(c.r, p); err != nil {
			return nil, err
		}
		switch {
		case h.OpCode == ws.OpClose:
			ce := &closeErr{code: 1005}
			if len(p) >= 2 {
				ce.code = int(binary.BigEndian.Uint16(p))
				ce.reason = string(p[2:])
			}
			return nil, ce
		case h.OpCode.IsControl():
			continue
		}
		return p, nil
	}
}

// expect reads until a frame starting with {"event":"<event>" arrives.
func (c *wsClient) expect(event string, timeout time.Duration) ([]byte, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	defer func() { _ = c.conn.SetReadDeadline(time.Time{}) }()
	prefix := []byte(`{"event":"` + event + `"`)
	for {
		p, err := c.next()
		if err != nil {
			return nil, err
		}
		if bytes.HasPrefix(p, prefix) {
			return p, nil
		}
	}
}

func (c *wsClient) authenticate(user string) error {
	if err := c.send([]byte(`{"event":"authenticate","data":{"token":"valid-` + user + `"}}`)); err != nil {
		return err
	}
	_, err := c.expect("connected", 15*time.Second)
	return err
}

// closeNormally sends a close frame and waits briefly for the server's.
func (c *wsClient) closeNormally() error {
	c.wmu.Lock()
	err := wsutil.WriteClientMessage(c.conn, ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
	c.wmu.Unlock()
	if err == nil {
		_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			if _, err = c.next(); err != nil {
				var ce *closeErr
				if errors.As(err, &ce) {
					err = nil
				}
				break
			}
		}
	}
	_ = c.conn.Close()
	return err
}

// intField reads the integer after "key": in p (only the first 200 bytes
// are searched: the lab puts its stamps first).
func intField(p []byte, key string) (int64, bool) {
	head := p[:min(len(p), 200)]
	i := bytes.Index(head, []byte(`"`+key+`":`))
	if i < 0 {
		return 0, false
	}
	j := i + len(key) + 3
	k := j
	for k < len(head) && (head[k] == '-' || head[k] >= '0' && head[k] <= '9') {
		k++
	}
	v, err := strconv.ParseInt(string(head[j:k]), 10, 64)
	return v, err == nil
}

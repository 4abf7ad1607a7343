package helper

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Serve serves srv on ln, as srv.Serve(ln) does, except that the
// WebSocket upgrades it accepts are answered directly, as the connection
// is accepted, instead of by srv's connection goroutine. The module serves
// this way; an app serving its own mux can too:
//
//	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
//	lc := component.ListenConfig(srv.ReadHeaderTimeout)
//	ln, err := lc.Listen(ctx, "tcp", addr)
//	…
//	go h.Serve(srv, ln)
//
// Through net/http, every upgrade costs the connection a goroutine and
// about 12 KiB of buffers that net/http gives up to the hijacker (its read
// buffer, its write buffer and the one Hijack adds), garbage the moment
// the connection is registered. The direct path looks at what the client
// has sent with MSG_PEEK, without taking it, and answers only an upgrade it
// can take whole: a complete request for the helper's path that ServeHTTP
// would accept as it is. Anything else (a request to another path, one not
// arrived in full, one ServeHTTP would refuse or negotiate, such as a
// compression offer while Options.PerMessageDeflate is on, and every
// request while Options.CheckOrigin is set, which is the app's code and
// must not run where connections are accepted) is left untouched in the
// socket for srv to read and answer exactly as it would have. The request
// a callback sees (AuthenticateRequest.Request) is parsed by net/http's own
// parser either way; it has no Pattern, and srv's ConnState, ConnContext
// and handler middleware do not see a connection upgraded directly.
//
// So:
//   - srv's handler must hand the helper's path to the helper, as the
//     module's does; an upgrade taken directly never reaches it;
//   - the request is there to be taken only if the listener waited for it
//     before accepting the connection: listen with component.ListenConfig
//     (TCP_DEFER_ACCEPT), or nearly every upgrade goes through net/http;
//   - it serves plain HTTP, for a server behind a TLS-terminating proxy or
//     on a private network. For TLS, call srv.ServeTLS: upgrades then go
//     through net/http (a wrapper under ServeTLS would see the raw TCP and
//     take a plaintext upgrade on the TLS port).
//
// Direct upgrades are handled one at a time on the goroutine that accepts
// connections, which costs less than starting one each: nothing there
// waits, as the request is in and a fresh socket takes the answer. On
// systems other than Linux (and on linux/386) and for connections other
// than TCP, Serve is srv.Serve(ln).
func (h *WebSocketServerHelper) Serve(srv *http.Server, ln net.Listener) error {
	return srv.Serve(h.upgradeListener(ln))
}

// upgradeListener wraps ln so that its Accept answers the upgrades Serve
// takes directly and returns every other connection.
func (h *WebSocketServerHelper) upgradeListener(ln net.Listener) net.Listener {
	if !directUpgrades {
		return ln
	}
	l := &upgradeListener{Listener: ln, h: h}
	l.peekFn = l.peekSocket
	return l
}

// directPeek bounds the upgrade requests taken directly: one longer (a
// browser's with many cookies) goes through net/http.
const directPeek = 4096

type upgradeListener struct {
	net.Listener
	h *WebSocketServerHelper

	// Accept is called from one goroutine per Serve; mu keeps the buffer
	// to one of them should a listener be served twice.
	mu  sync.Mutex
	buf [directPeek]byte

	// peekFn is peekSocket bound once: a closure per call would allocate.
	peekFn func(fd uintptr) bool
	peekN  int
}

// Accept returns the next connection that is not a WebSocket upgrade
// answered directly.
func (l *upgradeListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return c, err
		}
		if !l.upgrade(c) {
			return c, nil
		}
	}
}

var crlfcrlf = []byte("\r\n\r\n")

const (
	// upgradeHead is gobwas's response to an upgrade, up to the accept
	// value: both paths answer alike, byte for byte.
	upgradeHead = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "
	acceptGUID  = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
)

// upgrade answers c's upgrade if it can take it whole (see Serve); false
// leaves c as it was accepted, nothing read.
func (l *upgradeListener) upgrade(c net.Conn) bool {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.peek(tc)
	end := bytes.Index(l.buf[:n], crlfcrlf)
	if end < 0 {
		return false
	}
	head := l.buf[:end+len(crlfcrlf)]
	h := l.h
	if !h.mayBeUpgrade(head) {
		return false
	}
	r, key := h.directRequest(head, tc.RemoteAddr())
	if r == nil {
		return false
	}
	if !h.reserveSlots() {
		return false // ServeHTTP answers it: 503
	}
	// Take the request out of the socket (it is there: peeked), and
	// answer. What the client sent after it stays for the first read.
	_, err := io.ReadFull(tc, l.buf[:len(head)])
	if err == nil {
		resp := l.buf[:0]
		resp = append(resp, upgradeHead...)
		resp = appendAccept(resp, key)
		resp = append(resp, "\r\n\r\n"...)
		// A fresh socket's send buffer takes it at once; the deadline is
		// for a peer that is already gone.
		_ = tc.SetWriteDeadline(time.Now().Add(closeGrace))
		_, err = tc.Write(resp)
		_ = tc.SetWriteDeadline(time.Time{})
	}
	if err != nil {
		h.releaseSlots()
		h.log.Debug("upgrade failed", zap.Error(err), zap.String("remoteAddr", h.trusted.clientAddr(r)))
		_ = tc.Close()
		return true
	}
	if h.attach(tc, r, nil, nil) {
		h.stats.directUpgrades.Add(1)
	}
	return true
}

// mayBeUpgrade is the cheap look before parsing: a GET of the helper's
// path (with or without a query), in origin form.
func (h *WebSocketServerHelper) mayBeUpgrade(head []byte) bool {
	rest, ok := bytes.CutPrefix(head, []byte("GET "))
	if !ok {
		return false
	}
	rest, ok = bytes.CutPrefix(rest, []byte(h.opts.Path))
	return ok && len(rest) > 0 && (rest[0] == ' ' || rest[0] == '?')
}

// directRequest parses head with net/http's parser and returns the
// request and its Sec-WebSocket-Key when ServeHTTP would upgrade it as it
// is; nil when it would not, or might not.
func (h *WebSocketServerHelper) directRequest(head []byte, remote net.Addr) (*http.Request, string) {
	if h.opts.CheckOrigin != nil {
		return nil, "" // the app's code: not where connections are accepted
	}
	br := bufio.NewReaderSize(bytes.NewReader(head), len(head))
	r, err := http.ReadRequest(br)
	if err != nil || br.Buffered() > 0 {
		// A request whose lines end in a bare LF ends before the first
		// CRLF CRLF: what follows it is not ours to take.
		return nil, ""
	}
	r.RemoteAddr = remote.String()
	// What net/http's server checks after parsing (a valid Host, valid
	// header names and values), then what ServeHTTP and gobwas's
	// HTTPUpgrader check, each in a form that accepts no more than they
	// do. The parser has taken Host out of the header already (one at
	// most; mayBeUpgrade let only the origin form through, so r.Host is
	// the header's).
	if !plainHost(r.Host) || !plainHeader(r.Header) {
		return nil, ""
	}
	key := r.Header.Get("Sec-Websocket-Key")
	switch {
	case r.Method != http.MethodGet || r.ProtoMajor != 1 || r.ProtoMinor != 1,
		r.ContentLength != 0 || len(r.TransferEncoding) > 0,
		len(r.Header["Expect"]) > 0, // net/http answers 417 to most
		r.URL.Path != h.opts.Path,
		!strings.EqualFold(r.Header.Get("Upgrade"), "websocket"),
		!hasToken(r.Header.Get("Connection"), "upgrade"),
		len(key) != 24,
		r.Header.Get("Sec-Websocket-Version") != "13",
		h.opts.PerMessageDeflate && len(r.Header["Sec-Websocket-Extensions"]) > 0,
		!h.ready.Load() || h.closing.Load(),
		h.checkOrigin != nil && !h.checkOrigin(r):
		return nil, ""
	}
	return r, key
}

// plainHost accepts host names, IPv4 and bracketed IPv6 addresses with an
// optional port: a subset of what net/http's server takes as a Host.
func plainHost(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		case b == '-', b == '.', b == '_', b == ':', b == '[', b == ']':
		default:
			return false
		}
	}
	return true
}

// plainHeader accepts header names that are tokens and values without
// control characters but tabs: what net/http's server requires.
func plainHeader(hd http.Header) bool {
	for k, vs := range hd {
		if !isToken(k) {
			return false
		}
		for _, v := range vs {
			for i := 0; i < len(v); i++ {
				if b := v[i]; (b < ' ' && b != '\t') || b == 0x7f {
					return false
				}
			}
		}
	}
	return true
}

// hasToken reports whether the comma-separated list v, made of HTTP
// tokens only, holds token (case-insensitively).
func hasToken(v, token string) bool {
	found := false
	for part := range strings.SplitSeq(v, ",") {
		part = strings.Trim(part, " \t")
		if part == "" || !isToken(part) {
			return false
		}
		found = found || strings.EqualFold(part, token)
	}
	return found
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b <= ' ' || b >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, b) >= 0 {
			return false
		}
	}
	return true
}

// appendAccept appends the Sec-WebSocket-Accept value for key (RFC 6455
// §4.2.2).
func appendAccept(dst []byte, key string) []byte {
	var in [24 + len(acceptGUID)]byte
	copy(in[copy(in[:], key):], acceptGUID)
	sum := sha1.Sum(in[:])
	return base64.StdEncoding.AppendEncode(dst, sum[:])
}

package main

import (
	"encoding/binary"
	"encoding/json"
	"sync"

	"github.com/google/uuid"
)

// hookChunk is the size of the blocks the hook log's entries are packed in.
const hookChunk = 64 << 10

// hookLog is a ring of the last cap recorded hook calls. Entries are kept
// packed (a kind byte, the client id as 16 bytes when it is a canonical
// UUID, then length-prefixed strings) in dense blocks that are freed whole
// once the ring has moved past them, and rendered as JSON only when asked
// for: at 10 000 entries that is about a third of the memory of keeping
// each one's JSON, and a crowd's garbage does not pin half-empty pages
// around scattered entries after the crowd has gone.
type hookLog struct {
	mu       sync.Mutex
	capacity int
	entries  [][]byte // the ring; next is the oldest once full
	next     int
	chunk    []byte // the block new entries are appended to
}

func newHookLog(capacity int) *hookLog { return &hookLog{capacity: capacity} }

// Entry kinds; kindOther carries the hook's name as a string.
const (
	kindConnected byte = iota
	kindDisconnected
	kindMessage
	kindOther
)

// Client id forms.
const (
	idUUID byte = iota
	idString
)

func (l *hookLog) add(e hookEntry) {
	var scratch [128]byte
	b := scratch[:0]
	switch e.Hook {
	case "connected":
		b = append(b, kindConnected)
	case "disconnected":
		b = append(b, kindDisconnected)
	case "message":
		b = append(b, kindMessage)
	default:
		b = appendString(append(b, kindOther), e.Hook)
	}
	if u, ok := canonicalUUID(e.ClientID); ok {
		b = append(append(b, idUUID), u[:]...)
	} else {
		b = appendString(append(b, idString), e.ClientID)
	}
	b = appendString(b, e.UserID)
	b = appendString(b, string(e.Metadata))
	b = appendString(b, e.Event)

	l.mu.Lock()
	defer l.mu.Unlock()
	if len(b) > cap(l.chunk)-len(l.chunk) {
		l.chunk = make([]byte, 0, max(hookChunk, len(b)))
	}
	start := len(l.chunk)
	l.chunk = append(l.chunk, b...)
	b = l.chunk[start:len(l.chunk):len(l.chunk)]
	if len(l.entries) < l.capacity {
		l.entries = append(l.entries, b)
		return
	}
	l.entries[l.next] = b
	l.next = (l.next + 1) % l.capacity
}

// JSON returns the recorded calls, oldest first, as one JSON array, each
// entry as marshal renders a hookEntry.
func (l *hookLog) JSON() []byte {
	l.mu.Lock()
	packed := make([][]byte, len(l.entries))
	for i := range packed {
		packed[i] = l.entries[(l.next+i)%len(l.entries)]
	}
	l.mu.Unlock()
	out := []byte{'['}
	for _, p := range packed {
		e, ok := unpackHook(p)
		if !ok {
			continue
		}
		b, err := marshal(e)
		if err != nil {
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, b...)
	}
	return append(out, ']')
}

func unpackHook(b []byte) (e hookEntry, ok bool) {
	if len(b) < 2 {
		return e, false
	}
	kind := b[0]
	b = b[1:]
	switch kind {
	case kindConnected:
		e.Hook = "connected"
	case kindDisconnected:
		e.Hook = "disconnected"
	case kindMessage:
		e.Hook = "message"
	default:
		if e.Hook, b, ok = readString(b); !ok {
			return e, false
		}
	}
	if len(b) == 0 {
		return e, false
	}
	form := b[0]
	b = b[1:]
	if form == idUUID {
		var u uuid.UUID
		if len(b) < len(u) {
			return e, false
		}
		copy(u[:], b)
		e.ClientID, b = u.String(), b[len(u):]
	} else if e.ClientID, b, ok = readString(b); !ok {
		return e, false
	}
	var meta string
	if e.UserID, b, ok = readString(b); !ok {
		return e, false
	}
	if meta, b, ok = readString(b); !ok {
		return e, false
	}
	if meta != "" {
		e.Metadata = json.RawMessage(meta)
	}
	e.Event, _, ok = readString(b)
	return e, ok
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func readString(b []byte) (string, []byte, bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return "", nil, false
	}
	return string(b[k : k+int(n)]), b[k+int(n):], true
}

// canonicalUUID parses s only in the form uuid.UUID.String gives back
// (lowercase, hyphenated), so that rendering it returns s exactly.
func canonicalUUID(s string) (u uuid.UUID, ok bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, false
	}
	j := 0
	for i := 0; i < 36; i += 2 {
		if s[i] == '-' {
			i--
			continue
		}
		hi, ok1 := lowerHex(s[i])
		lo, ok2 := lowerHex(s[i+1])
		if !ok1 || !ok2 {
			return u, false
		}
		u[j] = hi<<4 | lo
		j++
	}
	return u, true
}

func lowerHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

package encryption

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/protocol"
)

// Options configures an ECDH handler. The zero value is the Ignis scheme.
type Options struct {
	// HKDFInfo is the HKDF info string. Default (and when empty)
	// DefaultHKDFInfo, the Ignis helper's; change it only together with
	// every client. An empty info string cannot be chosen: the original
	// would keep an explicit "", no client of it does.
	HKDFInfo string
}

// ECDH is a ready-made implementation of the Ignis ECDH scheme for the
// server helper: a handshake handler, an outbound transformer that seals
// every message to an encrypted client, an inbound transformer that opens
// the `encrypted` events such clients send, and a disconnect hook that drops
// the client's key. Keys live only in memory, only while their client is
// connected. It is safe for concurrent use.
type ECDH struct {
	info string
	keys sync.Map // client id → *Session
	n    atomic.Int64
}

// NewECDH builds a handler with no keys.
func NewECDH(opts Options) *ECDH {
	info := opts.HKDFInfo
	if info == "" {
		info = DefaultHKDFInfo
	}
	return &ECDH{info: info}
}

// Errors of the handshake and of the transformers.
var (
	// ErrNoPublicKey: the authenticate data has no string `publicKey`.
	ErrNoPublicKey = errors.New("encryption: handshake: authenticate data has no publicKey")
	// ErrNoSession: the client has no key (never shook hands, or gone).
	// The message is dropped for that client rather than sent in clear.
	ErrNoSession = errors.New("encryption: no key for client")
)

// Handshake is the helper's handshake handler. It reads `data.publicKey`
// (base64 of the client's raw P-256 point, see ParsePublicKey), makes a fresh key
// pair and a 32-byte salt, derives the client's AES-256-GCM key and keeps it
// under the client id. A missing or invalid key is an error, which the
// helper answers with "Encryption handshake failed" and close 4004.
func (e *ECDH) Handshake(ctx context.Context, req helper.HandshakeRequest) (*helper.HandshakeResult, error) {
	// The original reads data.publicKey: the key spelled exactly, the
	// last of duplicates winning (encoding/json would take "PublicKey"
	// too, and let any spelling overwrite it).
	var raw json.RawMessage
	err := protocol.ObjectMembers(req.Data, func(key []byte, value json.RawMessage) {
		if string(key) == "publicKey" {
			raw = value
		}
	})
	if err != nil {
		return nil, fmt.Errorf("encryption: handshake: %w", err)
	}
	pubB64, ok := protocol.StringValue(raw)
	if !ok || pubB64 == "" {
		return nil, ErrNoPublicKey
	}
	peer, err := ParsePublicKey(pubB64)
	if err != nil {
		return nil, fmt.Errorf("encryption: handshake: %w", err)
	}
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("encryption: handshake: key pair: %w", err)
	}
	salt := make([]byte, SaltSize)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("encryption: handshake: salt: %w", err)
	}
	key, err := DeriveKey(priv, peer, salt, e.info)
	if err != nil {
		return nil, fmt.Errorf("encryption: handshake: %w", err)
	}
	s, err := NewSession(key)
	if err != nil {
		return nil, fmt.Errorf("encryption: handshake: %w", err)
	}
	e.store(req.ClientID, s)
	// The client may have gone while we worked. Its disconnect hook ran
	// after its context ended; if the context is still live now, that hook
	// runs later and removes the key, otherwise we remove it here.
	if err := ctx.Err(); err != nil {
		e.Forget(req.ClientID)
		return nil, fmt.Errorf("encryption: handshake: client gone: %w", err)
	}
	return &helper.HandshakeResult{
		ServerPublicKey: EncodePublicKey(priv.PublicKey()),
		Salt:            base64.StdEncoding.EncodeToString(salt),
	}, nil
}

func (e *ECDH) store(id string, s *Session) {
	if _, loaded := e.keys.Swap(id, s); !loaded {
		e.n.Add(1)
	}
}

// Session returns the key of a client, or nil.
func (e *ECDH) Session(clientID string) *Session {
	v, ok := e.keys.Load(clientID)
	if !ok {
		return nil
	}
	return v.(*Session)
}

// Forget drops a client's key. The disconnect hook calls it.
func (e *ECDH) Forget(clientID string) {
	if _, loaded := e.keys.LoadAndDelete(clientID); loaded {
		e.n.Add(-1)
	}
}

// Len is the number of keys held (one per connected encrypted client).
func (e *ECDH) Len() int { return int(e.n.Load()) }

// Transform is the helper's outbound transformer: it seals
// `{"event","data"}` under a fresh IV and returns
// `{"event":"encrypted","data":{"iv","ct"}}`. A client without a key gets
// nothing (ErrNoSession) rather than the message in clear.
func (e *ECDH) Transform(_ context.Context, req helper.OutboundRequest) (*protocol.Message, error) {
	s := e.Session(req.Client.ID)
	if s == nil {
		return nil, ErrNoSession
	}
	data, err := s.EncryptMessage(req.Event, req.Data)
	if err != nil {
		return nil, err
	}
	return &protocol.Message{Event: protocol.EventEncrypted, Data: data}, nil
}

// TransformInbound is the helper's inbound transformer (our extension to
// the original): it opens an `encrypted` event sent by an encrypted client
// and returns the `{event, data, id?}` inside, which the helper then
// dispatches as if it had come in plain text. Undecryptable input is an
// error; the helper drops the message and keeps the connection.
func (e *ECDH) TransformInbound(_ context.Context, req helper.InboundRequest) (protocol.Message, error) {
	s := e.Session(req.ClientID)
	if s == nil {
		return protocol.Message{}, ErrNoSession
	}
	event, data, id, err := s.DecryptMessage(req.Message.Data)
	if err != nil {
		return protocol.Message{}, err
	}
	return protocol.Message{Event: event, Data: data, ID: id}, nil
}

// ClientDisconnected is a disconnect hook that forgets the client's key.
func (e *ECDH) ClientDisconnected(_ context.Context, info helper.ClientInfo) error {
	e.Forget(info.ClientID)
	return nil
}

// WrapClientDisconnected returns a disconnect hook that forgets the
// client's key, then calls next (which may be nil).
func (e *ECDH) WrapClientDisconnected(next helper.ClientDisconnectedFunc) helper.ClientDisconnectedFunc {
	if next == nil {
		return e.ClientDisconnected
	}
	return func(ctx context.Context, info helper.ClientInfo) error {
		e.Forget(info.ClientID)
		return next(ctx, info)
	}
}

// Handlers returns h with encryption installed: the handshake handler, the
// outbound and inbound transformers, and h's disconnect hook wrapped so that
// keys are dropped. Use it with Options.RequireEncryption = true.
func (e *ECDH) Handlers(h helper.Handlers) helper.Handlers {
	h.Handshake = e.Handshake
	h.OutboundTransformer = e.Transform
	h.InboundTransformer = e.TransformInbound
	h.ClientDisconnected = e.WrapClientDisconnected(h.ClientDisconnected)
	return h
}

package encryption

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/fxws/websocket/protocol"
)

// Sizes of the scheme, as the Ignis ECDH helper fixes them.
const (
	// DefaultHKDFInfo is the HKDF info string of the Ignis ECDH helper.
	DefaultHKDFInfo = "ignis-ecdh-p256-aes-256-gcm-v1"
	// SaltSize is the length of the random HKDF salt.
	SaltSize = 32
	// IVSize is the length of the random AES-GCM IV of every message.
	IVSize = 12
	// TagSize is the length of the AES-GCM tag appended to the ciphertext.
	TagSize = 16
	// KeySize is the length of the derived AES key (AES-256).
	KeySize = 32
	// PublicKeySize is the length of a raw uncompressed P-256 point.
	PublicKeySize = 65
	// CompressedPublicKeySize is the length of a raw compressed P-256
	// point, which ParsePublicKey takes as well.
	CompressedPublicKeySize = 33
)

// ErrInvalidBase64 is returned for input that the Ignis helper's strict
// base64 decoder would refuse too.
var ErrInvalidBase64 = errors.New("encryption: invalid base64 input")

// DecodeBase64 decodes standard, padded base64 as strictly as the Ignis
// helper does: non-empty, a multiple of 4 long, only the base64 alphabet
// (Go's decoder alone would skip newlines).
func DecodeBase64(s string) ([]byte, error) {
	if len(s) == 0 || len(s)%4 != 0 || strings.ContainsAny(s, "\r\n") {
		return nil, ErrInvalidBase64
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidBase64, err)
	}
	return b, nil
}

// ParsePublicKey reads a peer's public key: base64 of the raw P-256 point,
// uncompressed (65 bytes, 0x04‖X‖Y) as WebCrypto exports it, or compressed
// (33 bytes, 0x02 or 0x03‖X), which the original's WebCrypto import takes
// too. Points not on the curve are refused.
func ParsePublicKey(b64 string) (*ecdh.PublicKey, error) {
	raw, err := DecodeBase64(b64)
	if err != nil {
		return nil, fmt.Errorf("encryption: public key: %w", err)
	}
	if len(raw) == CompressedPublicKeySize && (raw[0] == 2 || raw[0] == 3) {
		x, y := elliptic.UnmarshalCompressed(elliptic.P256(), raw)
		if x == nil {
			return nil, errors.New("encryption: public key: compressed point not on P-256")
		}
		full := make([]byte, PublicKeySize)
		full[0] = 4
		x.FillBytes(full[1:33])
		y.FillBytes(full[33:])
		raw = full
	}
	if len(raw) != PublicKeySize || raw[0] != 4 {
		return nil, fmt.Errorf("encryption: public key: want a P-256 point, %d bytes uncompressed or %d compressed, got %d bytes", PublicKeySize, CompressedPublicKeySize, len(raw))
	}
	pub, err := ecdh.P256().NewPublicKey(raw)
	if err != nil {
		return nil, fmt.Errorf("encryption: public key: %w", err)
	}
	return pub, nil
}

// EncodePublicKey is the wire form of a public key: base64 of its raw
// uncompressed point.
func EncodePublicKey(pub *ecdh.PublicKey) string {
	return base64.StdEncoding.EncodeToString(pub.Bytes())
}

// DeriveKey computes the scheme's AES-256 key from one side's private key,
// the other side's public key, the salt and the HKDF info:
// HKDF-SHA256(ECDH shared secret (X coordinate), salt, info), 32 bytes.
func DeriveKey(priv *ecdh.PrivateKey, peer *ecdh.PublicKey, salt []byte, info string) ([]byte, error) {
	shared, err := priv.ECDH(peer)
	if err != nil {
		return nil, fmt.Errorf("encryption: ECDH: %w", err)
	}
	key, err := hkdf.Key(sha256.New, shared, salt, info, KeySize)
	if err != nil {
		return nil, fmt.Errorf("encryption: HKDF: %w", err)
	}
	return key, nil
}

// Payload is the data of an `encrypted` event: base64 of the IV and of the
// ciphertext followed by its tag.
type Payload struct {
	// IV is the `iv` member: base64 of the message's IVSize-byte AES-GCM IV,
	// drawn at random for every message.
	IV string `json:"iv"`
	// CT is the `ct` member: base64 of the ciphertext followed by its
	// TagSize-byte tag.
	CT string `json:"ct"`
}

// Session is one client's AES-256-GCM key. It is safe for concurrent use:
// sealing draws a fresh random IV each time and keeps no state.
type Session struct {
	aead cipher.AEAD
}

// NewSession wraps a derived key.
func NewSession(key []byte) (*Session, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("encryption: AES key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("encryption: GCM: %w", err)
	}
	return &Session{aead: aead}, nil
}

func readIV(iv []byte) error {
	if _, err := rand.Read(iv); err != nil { // never fails on supported platforms
		return fmt.Errorf("encryption: random IV: %w", err)
	}
	return nil
}

// bufPool holds scratch buffers for the plaintext and the ciphertext of one
// message; they never outlive the call that takes them.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// maxPooled keeps a rare huge message from pinning a huge buffer.
const maxPooled = 64 << 10

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > maxPooled {
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

// Seal encrypts plaintext under a fresh random IV.
func (s *Session) Seal(plaintext []byte) (Payload, error) {
	var iv [IVSize]byte
	if err := readIV(iv[:]); err != nil {
		return Payload{}, err
	}
	return s.sealWithIV(iv[:], plaintext)
}

// sealWithIV encrypts plaintext under the given IV. Reusing an IV with the
// same key breaks AES-GCM: this exists for test vectors, and is unexported
// so that no caller can choose an IV.
func (s *Session) sealWithIV(iv, plaintext []byte) (Payload, error) {
	if len(iv) != IVSize {
		return Payload{}, fmt.Errorf("encryption: IV must be %d bytes, got %d", IVSize, len(iv))
	}
	ct := s.aead.Seal(nil, iv, plaintext, nil)
	return Payload{IV: base64.StdEncoding.EncodeToString(iv), CT: base64.StdEncoding.EncodeToString(ct)}, nil
}

// Open decrypts a payload and checks its tag.
func (s *Session) Open(p Payload) ([]byte, error) {
	iv, err := DecodeBase64(p.IV)
	if err != nil {
		return nil, fmt.Errorf("encryption: iv: %w", err)
	}
	if len(iv) != IVSize {
		return nil, fmt.Errorf("encryption: iv must be %d bytes, got %d", IVSize, len(iv))
	}
	ct, err := DecodeBase64(p.CT)
	if err != nil {
		return nil, fmt.Errorf("encryption: ct: %w", err)
	}
	if len(ct) < TagSize {
		return nil, fmt.Errorf("encryption: ct shorter than the %d-byte tag", TagSize)
	}
	pt, err := s.aead.Open(ct[:0], iv, ct, nil)
	if err != nil {
		return nil, fmt.Errorf("encryption: decrypt: %w", err)
	}
	return pt, nil
}

// EncryptMessage returns the data of the `encrypted` event that carries
// `{"event":event,"data":data}` (data left out when nil, as
// JSON.stringify does), as JSON `{"iv":…,"ct":…}`. It allocates only the
// result.
func (s *Session) EncryptMessage(event string, data json.RawMessage) (json.RawMessage, error) {
	var iv [IVSize]byte
	if err := readIV(iv[:]); err != nil {
		return nil, err
	}
	return s.encryptMessage(iv[:], event, data), nil
}

func (s *Session) encryptMessage(iv []byte, event string, data json.RawMessage) json.RawMessage {
	pb := getBuf()
	pt := protocol.AppendMessage((*pb)[:0], event, data)
	if need := 2*len(pt) + TagSize; cap(pt) < need {
		grown := make([]byte, len(pt), need)
		copy(grown, pt)
		pt = grown
	}
	// Seal into the scratch buffer right after the plaintext: no overlap,
	// no allocation.
	sealed := s.aead.Seal(pt[len(pt):], iv, pt, nil)
	ctLen := base64.StdEncoding.EncodedLen(len(sealed))
	out := make([]byte, 0, len(`{"iv":"","ct":""}`)+base64.StdEncoding.EncodedLen(IVSize)+ctLen)
	out = append(out, `{"iv":"`...)
	out = base64.StdEncoding.AppendEncode(out, iv)
	out = append(out, `","ct":"`...)
	out = base64.StdEncoding.AppendEncode(out, sealed)
	out = append(out, `"}`...)
	*pb = pt[:0]
	putBuf(pb)
	return out
}

// DecryptMessage opens the data of an `encrypted` event and returns the
// message inside: an object with a string `event`, optional `data` and an
// optional string `id`.
func (s *Session) DecryptMessage(data json.RawMessage) (event string, inner json.RawMessage, id string, err error) {
	// Keys match exactly, as the original's decrypt reads payload.iv and
	// payload.ct (encoding/json would take "IV" too).
	var rawIV, rawCT json.RawMessage
	err = protocol.ObjectMembers(data, func(key []byte, value json.RawMessage) {
		switch string(key) {
		case "iv":
			rawIV = value
		case "ct":
			rawCT = value
		}
	})
	if err != nil {
		return "", nil, "", fmt.Errorf("encryption: encrypted data is not {iv, ct}: %w", err)
	}
	var p Payload
	var okIV, okCT bool
	p.IV, okIV = protocol.StringValue(rawIV)
	p.CT, okCT = protocol.StringValue(rawCT)
	if !okIV || !okCT {
		return "", nil, "", errors.New("encryption: encrypted data is not {iv, ct}: want two strings")
	}
	pt, err := s.Open(p)
	if err != nil {
		return "", nil, "", err
	}
	// The frame's UTF-8 check saw only ciphertext.
	if !utf8.Valid(pt) {
		return "", nil, "", errors.New("encryption: decrypted message is not valid UTF-8")
	}
	// Keys match exactly, as a plain message's do (encoding/json would
	// take "EVENT" for "event"); of duplicates the last wins.
	var rawEvent, rawID json.RawMessage
	err = protocol.ObjectMembers(pt, func(key []byte, value json.RawMessage) {
		switch string(key) {
		case "event":
			rawEvent = value
		case "data":
			inner = value
		case "id":
			rawID = value
		}
	})
	if err != nil {
		return "", nil, "", fmt.Errorf("encryption: decrypted message is not a JSON object: %w", err)
	}
	event, ok := protocol.StringValue(rawEvent)
	if !ok || event == "" {
		return "", nil, "", errors.New("encryption: decrypted message has no string event")
	}
	id, _ = protocol.StringValue(rawID)
	return event, inner, id, nil
}

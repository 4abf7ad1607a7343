package fxtest

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/fxws/websocket/encryption"
	"github.com/fxws/websocket/protocol"
)

// EncryptedClient is a Client that speaks the Ignis ECDH scheme, as a
// browser client written for Ignis does: it sends its P-256 public key with
// authenticate, derives the session key from the `serverPublicKey` and
// `salt` of `connected`, decrypts the `encrypted` events it receives and can
// send encrypted events itself (our server's extension).
//
// The embedded Client still sees the raw traffic: Expect("encrypted")
// returns sealed messages, ExpectError and ExpectClose work as usual.
type EncryptedClient struct {
	// Client is the protocol client underneath. Its own methods see the
	// traffic as it is on the wire: `encrypted` events stay sealed.
	*Client

	priv *ecdh.PrivateKey
	info string

	mu      sync.Mutex
	session *encryption.Session
	plain   []protocol.Message // decrypted, not yet expected
}

// DialEncrypted dials url and prepares a fresh key pair.
func DialEncrypted(ctx context.Context, url string) (*EncryptedClient, error) {
	c, err := Dial(ctx, url)
	if err != nil {
		return nil, err
	}
	e, err := NewEncryptedClient(c)
	if err != nil {
		_ = c.Abort()
		return nil, err
	}
	return e, nil
}

// NewEncryptedClient wraps a connected Client with a fresh P-256 key pair.
func NewEncryptedClient(c *Client) (*EncryptedClient, error) {
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("fxtest: key pair: %w", err)
	}
	return &EncryptedClient{Client: c, priv: priv, info: encryption.DefaultHKDFInfo}, nil
}

// PublicKey is the client's public key as sent in authenticate.
func (e *EncryptedClient) PublicKey() string { return encryption.EncodePublicKey(e.priv.PublicKey()) }

// Authenticate sends authenticate with data (a JSON object, or nil) plus
// `publicKey`, waits for `connected` and derives the session key from it.
func (e *EncryptedClient) Authenticate(ctx context.Context, data any) (protocol.ConnectedData, error) {
	fields := map[string]json.RawMessage{}
	if data != nil {
		b, err := json.Marshal(data)
		if err != nil {
			return protocol.ConnectedData{}, fmt.Errorf("fxtest: authenticate data: %w", err)
		}
		if err := json.Unmarshal(b, &fields); err != nil {
			return protocol.ConnectedData{}, fmt.Errorf("fxtest: authenticate data must be a JSON object: %w", err)
		}
	}
	fields["publicKey"], _ = json.Marshal(e.PublicKey())
	cd, err := e.Client.Authenticate(ctx, fields)
	if err != nil {
		return cd, err
	}
	if cd.ServerPublicKey == "" || cd.Salt == "" {
		return cd, errors.New("fxtest: connected carries no serverPublicKey/salt: the server did not enable encryption")
	}
	if err := e.derive(cd.ServerPublicKey, cd.Salt); err != nil {
		return cd, err
	}
	return cd, nil
}

func (e *EncryptedClient) derive(serverPublicKey, saltB64 string) error {
	peer, err := encryption.ParsePublicKey(serverPublicKey)
	if err != nil {
		return fmt.Errorf("fxtest: serverPublicKey: %w", err)
	}
	salt, err := encryption.DecodeBase64(saltB64)
	if err != nil {
		return fmt.Errorf("fxtest: salt: %w", err)
	}
	key, err := encryption.DeriveKey(e.priv, peer, salt, e.info)
	if err != nil {
		return err
	}
	s, err := encryption.NewSession(key)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.session = s
	e.mu.Unlock()
	return nil
}

// Session is the derived key, nil before Authenticate succeeded.
func (e *EncryptedClient) Session() *encryption.Session {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.session
}

// Decrypt opens one `encrypted` message and returns the message inside.
func (e *EncryptedClient) Decrypt(m protocol.Message) (protocol.Message, error) {
	s := e.Session()
	if s == nil {
		return protocol.Message{}, errors.New("fxtest: not authenticated with encryption")
	}
	if m.Event != protocol.EventEncrypted {
		return protocol.Message{}, fmt.Errorf("fxtest: %q is not an encrypted event", m.Event)
	}
	event, data, id, err := s.DecryptMessage(m.Data)
	if err != nil {
		return protocol.Message{}, fmt.Errorf("fxtest: %w", err)
	}
	return protocol.Message{Event: event, Data: data, ID: id}, nil
}

// ExpectDecrypted waits for an `encrypted` message whose plaintext event is
// event and returns the plaintext message. Decrypted messages of other
// events are kept for later calls, in arrival order. A message that does
// not decrypt is an error.
func (e *EncryptedClient) ExpectDecrypted(ctx context.Context, event string) (protocol.Message, error) {
	for {
		e.mu.Lock()
		for i, m := range e.plain {
			if m.Event == event {
				e.plain = append(e.plain[:i:i], e.plain[i+1:]...)
				e.mu.Unlock()
				return m, nil
			}
		}
		e.mu.Unlock()
		raw, err := e.Client.Expect(ctx, protocol.EventEncrypted)
		if err != nil {
			return protocol.Message{}, fmt.Errorf("fxtest: no encrypted %q: %w", event, err)
		}
		m, err := e.Decrypt(raw)
		if err != nil {
			return protocol.Message{}, err
		}
		e.mu.Lock()
		e.plain = append(e.plain, m)
		e.mu.Unlock()
	}
}

// EmitEncrypted sends `{"event":"encrypted","data":{iv,ct}}` whose
// plaintext is `{"event": event, "data": data}` (data left out when nil).
func (e *EncryptedClient) EmitEncrypted(event string, data any) error {
	s := e.Session()
	if s == nil {
		return errors.New("fxtest: not authenticated with encryption")
	}
	var raw json.RawMessage
	if data != nil {
		b, err := json.Marshal(data)
		if err != nil {
			return fmt.Errorf("fxtest: data: %w", err)
		}
		raw = b
	}
	sealed, err := s.EncryptMessage(event, raw)
	if err != nil {
		return err
	}
	return e.Client.Emit(protocol.EventEncrypted, sealed)
}

package conformance

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"testing"
)

// The encryption rows run on one dedicated instance started with
// REQUIRE_ENCRYPTION=1 (through CONFORMANCE_SERVER_CMD).
var encrypted dedicated

func encryptedServer(t *testing.T) string {
	t.Helper()
	return encrypted.wsURL(t, cfg, "REQUIRE_ENCRYPTION=1")
}

func TestEncryptionMissingKey(t *testing.T) {
	t.Parallel()
	c := dialTo(t, encryptedServer(t))
	emit(t, c, "authenticate", map[string]string{"token": "valid-" + uniq("nokey-")})
	expectError(t, c, "Encryption handshake failed")
	expectClose(t, c, 4004, "Encryption required", waitFor)
}

func TestEncryptionRejectedToken(t *testing.T) {
	t.Parallel()
	c := dialTo(t, encryptedServer(t))
	emit(t, c, "authenticate", map[string]string{"token": "nope", "publicKey": "x"})
	expectError(t, c, "Authentication failed")
	expectClose(t, c, 4003, "Authentication failed", waitFor)
}

// TestEncryptionMalformedKey: deliberate difference, a failing handshake is
// an encryption failure (4004), not an authentication error.
func TestEncryptionMalformedKey(t *testing.T) {
	t.Parallel()
	deliberate(t, "answers a malformed public key with \"Authentication error\" and 4003")
	for _, key := range []string{"not base64!", base64.StdEncoding.EncodeToString([]byte("short")),
		base64.StdEncoding.EncodeToString(make([]byte, 65))} {
		c := dialTo(t, encryptedServer(t))
		emit(t, c, "authenticate", map[string]string{"token": "valid-" + uniq("badkey-"), "publicKey": key})
		expectError(t, c, "Encryption handshake failed")
		expectClose(t, c, 4004, "Encryption required", waitFor)
	}
}

// TestEncryptionRoundTrip: deliberate difference, connected is plain text
// with serverPublicKey and salt; everything after it is encrypted with the
// Ignis ECDH scheme.
func TestEncryptionRoundTrip(t *testing.T) {
	t.Parallel()
	deliberate(t, "sends connected through the transformer, so the client can never learn the key")
	u := encryptedServer(t)
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	user := uniq("secret-")
	c := dialTo(t, u)
	emit(t, c, "authenticate", map[string]string{"token": "valid-" + user,
		"publicKey": base64.StdEncoding.EncodeToString(priv.PublicKey().Bytes())})
	raw := expect(t, c, "connected")
	var cd struct {
		ID, UserID, Time, ServerPublicKey, Salt string
	}
	if err := json.Unmarshal(raw, &cd); err != nil {
		t.Fatal(err)
	}
	wantKeys(t, raw, "id", "userId", "time", "serverPublicKey", "salt")
	if cd.UserID != user || !isoTime.MatchString(cd.Time) {
		t.Fatalf("connected %s", raw)
	}
	gcm := deriveGCM(t, priv, cd.ServerPublicKey, cd.Salt)

	v := getViewAt(t, encrypted.inst.base, cd.ID)
	if !v.Encrypted || v.State != "authenticated" {
		t.Fatalf("view %s", v.raw)
	}
	emit(t, c, "echo", map[string]string{"hello": "secret"})
	plain := decrypt(t, gcm, expect(t, c, "encrypted"))
	jsonEqual(t, plain, `{"event":"echo","data":{"hello":"secret"}}`)
	// A user send reaches it encrypted too.
	ev := uniq("secret-ev-")
	r := doAt(t, encrypted.inst.base, "POST", "/ws-api/users/"+seg(user)+"/send", sendBody(ev, `[1,2]`))
	if r.status != 200 {
		t.Fatalf("user send: %d", r.status)
	}
	jsonEqual(t, decrypt(t, gcm, expect(t, c, "encrypted")), `{"event":"`+ev+`","data":[1,2]}`)
}

// TestEncryptedClientErrors: once a client is encrypted, the original sends
// every event to it through the outbound transformer, protocol errors
// included ("Invalid message format", "Already authenticated"). Observable
// without the key: the answer is an `encrypted` event, not a plain `error`.
func TestEncryptedClientErrors(t *testing.T) {
	t.Parallel()
	u := encryptedServer(t)
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c := dialTo(t, u)
	emit(t, c, "authenticate", map[string]string{"token": "valid-" + uniq("encerr-"),
		"publicKey": base64.StdEncoding.EncodeToString(priv.PublicKey().Bytes())})
	// The original encrypts connected too (a deliberate difference); ours
	// sends it plain.
	m, err := c.ExpectAny(ctxWait(t), "connected", "encrypted")
	if err != nil {
		t.Fatal(err)
	}
	var gcm cipher.AEAD
	if m.Event == "connected" {
		var cd struct{ ServerPublicKey, Salt string }
		if err := json.Unmarshal(m.Data, &cd); err != nil {
			t.Fatal(err)
		}
		gcm = deriveGCM(t, priv, cd.ServerPublicKey, cd.Salt)
	}
	check := func(send, want string) {
		t.Helper()
		sendText(t, c, send)
		m, err := c.ExpectAny(ctxWait(t), "encrypted", "error")
		if err != nil {
			t.Fatal(err)
		}
		if m.Event != "encrypted" {
			t.Fatalf("answer to %s sent in plain text to an encrypted client: %s %s", send, m.Event, m.Data)
		}
		if gcm != nil {
			jsonEqual(t, decrypt(t, gcm, m.Data), want)
		}
	}
	check("not json", `{"event":"error","data":{"message":"Invalid message format"}}`)
	check(`{"event":"authenticate","data":{"token":"valid-again"}}`, `{"event":"error","data":{"message":"Already authenticated"}}`)
}

func deriveGCM(t *testing.T, priv *ecdh.PrivateKey, serverPub, salt64 string) cipher.AEAD {
	t.Helper()
	pubRaw, err := base64.StdEncoding.DecodeString(serverPub)
	if err != nil {
		t.Fatalf("serverPublicKey: %v", err)
	}
	pub, err := ecdh.P256().NewPublicKey(pubRaw)
	if err != nil {
		t.Fatalf("serverPublicKey: %v", err)
	}
	salt, err := base64.StdEncoding.DecodeString(salt64)
	if err != nil || len(salt) != 32 {
		t.Fatalf("salt %q: %v", salt64, err)
	}
	secret, err := priv.ECDH(pub)
	if err != nil {
		t.Fatal(err)
	}
	key, err := hkdf.Key(sha256.New, secret, salt, "ignis-ecdh-p256-aes-256-gcm-v1", 32)
	if err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return gcm
}

func decrypt(t *testing.T, gcm cipher.AEAD, data json.RawMessage) json.RawMessage {
	t.Helper()
	var d struct{ IV, CT string }
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("encrypted data %s: %v", data, err)
	}
	iv, err1 := base64.StdEncoding.DecodeString(d.IV)
	ct, err2 := base64.StdEncoding.DecodeString(d.CT)
	if err1 != nil || err2 != nil || len(iv) != 12 {
		t.Fatalf("encrypted data %s", data)
	}
	plain, err := gcm.Open(nil, iv, ct, nil)
	if err != nil {
		t.Fatalf("decrypt: %v", err)
	}
	return plain
}

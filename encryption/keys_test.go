package encryption_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/fxws/websocket/encryption"
	"github.com/fxws/websocket/helper"
)

// The original reads the key as `data.publicKey` after JSON.parse: the key
// must be spelled exactly, and of duplicate keys the last one spelled
// exactly wins. encoding/json matches struct fields case-insensitively and
// lets any differently-cased duplicate overwrite the value, so ECDH.Handshake
// accepts keys the original refuses (4004 there) and refuses keys the
// original accepts. The rest of the package matches keys exactly on purpose
// (DecryptMessage: "Keys match exactly, as a plain message's do").
// (From a review.)
func TestHandshakePublicKeyIsMatchedExactly(t *testing.T) {
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	valid := encryption.EncodePublicKey(priv.PublicKey())
	q, _ := json.Marshal(valid)
	cases := []struct {
		name, data string
		accept     bool // what the original's handshakeFn does with this data
	}{
		{"exact", `{"token":"t","publicKey":` + string(q) + `}`, true},
		// Original: data.publicKey is undefined → '' → null → 4004.
		{"other case only", `{"token":"t","PublicKey":` + string(q) + `}`, false},
		{"upper case only", `{"token":"t","PUBLICKEY":` + string(q) + `}`, false},
		// Original: data.publicKey is the valid key; "publickey" is another property.
		{"exact then other-case junk", `{"token":"t","publicKey":` + string(q) + `,"publickey":1}`, true},
		// Original: data.publicKey is 42 → not a string → 4004.
		{"exact junk then other-case key", `{"token":"t","publicKey":42,"PublicKey":` + string(q) + `}`, false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := encryption.NewECDH(encryption.Options{})
			res, err := e.Handshake(context.Background(), helper.HandshakeRequest{
				ClientID: "c" + string(rune('0'+i)), Data: json.RawMessage(tc.data)})
			if got := err == nil && res != nil; got != tc.accept {
				t.Errorf("%s: accepted=%v (err %v), the original accepted=%v", tc.data, got, err, tc.accept)
			}
		})
	}
}

// The same for the payload of an `encrypted` event (our extension): the
// original's ECDH.decrypt reads payload.iv / payload.ct exactly, and a
// plain message's members are matched exactly (protocol.ObjectMembers);
// DecryptMessage's json.Unmarshal into Payload is case-insensitive.
func TestEncryptedPayloadKeysMatchedExactly(t *testing.T) {
	s, err := encryption.NewSession(make([]byte, encryption.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Seal([]byte(`{"event":"echo","data":1}`))
	if err != nil {
		t.Fatal(err)
	}
	iv, _ := json.Marshal(p.IV)
	ct, _ := json.Marshal(p.CT)
	// Upper-case keys: the original's decrypt throws (payload.iv undefined).
	if ev, _, _, err := s.DecryptMessage(json.RawMessage(`{"IV":` + string(iv) + `,"CT":` + string(ct) + `}`)); err == nil {
		t.Errorf(`{"IV","CT"} opened (event %q); the original refuses it`, ev)
	}
	// Exact keys, then an extra differently-cased member: the original
	// opens it (it never looks at "Ct").
	if _, _, _, err := s.DecryptMessage(json.RawMessage(`{"iv":` + string(iv) + `,"ct":` + string(ct) + `,"Ct":"x"}`)); err != nil {
		t.Errorf(`{"iv","ct","Ct"} refused: %v; the original opens it`, err)
	}
}

// A compressed point (33 bytes) is taken as WebCrypto's raw import in the
// original takes it, and gives the key the uncompressed one gives.
func TestHandshakeTakesCompressedKeys(t *testing.T) {
	client, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	//lint:ignore SA1019 only to build a compressed point (crypto/ecdh has no compressed form)
	x, y := elliptic.Unmarshal(elliptic.P256(), client.PublicKey().Bytes())
	compressed := base64.StdEncoding.EncodeToString(elliptic.MarshalCompressed(elliptic.P256(), x, y))
	parsed, err := encryption.ParsePublicKey(compressed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(parsed.Bytes(), client.PublicKey().Bytes()) {
		t.Fatal("the compressed point parsed to another key")
	}
	e := encryption.NewECDH(encryption.Options{})
	data, _ := json.Marshal(map[string]string{"publicKey": compressed})
	res, err := e.Handshake(context.Background(), helper.HandshakeRequest{ClientID: "c1", Data: data})
	if err != nil {
		t.Fatal(err)
	}
	serverPub, err := encryption.ParsePublicKey(res.ServerPublicKey)
	if err != nil {
		t.Fatal(err)
	}
	salt, err := encryption.DecodeBase64(res.Salt)
	if err != nil {
		t.Fatal(err)
	}
	key, err := encryption.DeriveKey(client, serverPub, salt, encryption.DefaultHKDFInfo)
	if err != nil {
		t.Fatal(err)
	}
	mine, err := encryption.NewSession(key)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := e.Session("c1").EncryptMessage("hello", json.RawMessage(`{"n":1}`))
	if err != nil {
		t.Fatal(err)
	}
	event, inner, _, err := mine.DecryptMessage(sealed)
	if err != nil || event != "hello" || string(inner) != `{"n":1}` {
		t.Fatalf("opened %q %s, %v", event, inner, err)
	}
}

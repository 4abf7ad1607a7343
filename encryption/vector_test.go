package encryption

import (
	"crypto/ecdh"
	"encoding/base64"
	"encoding/json"
	"os"
	"testing"

	"github.com/fxws/websocket/protocol"
)

// ignisVector is testdata/ignis_vector.json, produced by gen_vector.ts with
// the original's own ECDH helper (@venizia/ignis-helpers) on Bun.
type ignisVector struct {
	HKDFInfo         string `json:"hkdfInfo"`
	ServerPrivateKey string `json:"serverPrivateKey"`
	ServerPublicKey  string `json:"serverPublicKey"`
	ClientPrivateKey string `json:"clientPrivateKey"`
	ClientPublicKey  string `json:"clientPublicKey"`
	Salt             string `json:"salt"`
	Key              string `json:"key"`
	Outbound         []struct {
		Event     string  `json:"event"`
		Data      *string `json:"data"`
		Plaintext string  `json:"plaintext"`
		IV        string  `json:"iv"`
		CT        string  `json:"ct"`
	} `json:"outbound"`
	Inbound struct {
		Plaintext string `json:"plaintext"`
		IV        string `json:"iv"`
		CT        string `json:"ct"`
	} `json:"inbound"`
}

func loadVector(t *testing.T) ignisVector {
	t.Helper()
	b, err := os.ReadFile("testdata/ignis_vector.json")
	if err != nil {
		t.Fatal(err)
	}
	var v ignisVector
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := DecodeBase64(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return b
}

func privateKey(t *testing.T, b64 string) *ecdh.PrivateKey {
	t.Helper()
	k, err := ecdh.P256().NewPrivateKey(mustB64(t, b64))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestIgnisVector(t *testing.T) {
	v := loadVector(t)
	if v.HKDFInfo != DefaultHKDFInfo {
		t.Fatalf("vector info %q, ours %q", v.HKDFInfo, DefaultHKDFInfo)
	}
	serverPriv := privateKey(t, v.ServerPrivateKey)
	clientPriv := privateKey(t, v.ClientPrivateKey)
	if got := EncodePublicKey(serverPriv.PublicKey()); got != v.ServerPublicKey {
		t.Fatalf("server public key: got %s want %s", got, v.ServerPublicKey)
	}
	clientPub, err := ParsePublicKey(v.ClientPublicKey)
	if err != nil {
		t.Fatal(err)
	}
	serverPub, err := ParsePublicKey(v.ServerPublicKey)
	if err != nil {
		t.Fatal(err)
	}
	salt := mustB64(t, v.Salt)

	// Both sides derive the key the original derived.
	serverKey, err := DeriveKey(serverPriv, clientPub, salt, DefaultHKDFInfo)
	if err != nil {
		t.Fatal(err)
	}
	clientKey, err := DeriveKey(clientPriv, serverPub, salt, DefaultHKDFInfo)
	if err != nil {
		t.Fatal(err)
	}
	if got := base64.StdEncoding.EncodeToString(serverKey); got != v.Key {
		t.Fatalf("server-side key %s, original %s", got, v.Key)
	}
	if got := base64.StdEncoding.EncodeToString(clientKey); got != v.Key {
		t.Fatalf("client-side key %s, original %s", got, v.Key)
	}
	server, err := NewSession(serverKey)
	if err != nil {
		t.Fatal(err)
	}
	client, err := NewSession(clientKey)
	if err != nil {
		t.Fatal(err)
	}

	for _, o := range v.Outbound {
		var data json.RawMessage
		if o.Data != nil {
			data = json.RawMessage(*o.Data)
		}
		// Ours, same inputs and IV → the same bytes as the original.
		iv := mustB64(t, o.IV)
		got := server.encryptMessage(iv, o.Event, data)
		want, _ := json.Marshal(Payload{IV: o.IV, CT: o.CT})
		if string(got) != string(want) {
			t.Errorf("%s: ours %s\noriginal %s", o.Event, got, want)
		}
		p, err := server.sealWithIV(iv, []byte(o.Plaintext))
		if err != nil || p.CT != o.CT {
			t.Errorf("%s: sealWithIV ct %s err %v", o.Event, p.CT, err)
		}
		// The original's payload opens with ours, on the client side.
		pt, err := client.Open(Payload{IV: o.IV, CT: o.CT})
		if err != nil {
			t.Fatalf("%s: %v", o.Event, err)
		}
		if string(pt) != o.Plaintext {
			t.Errorf("%s: plaintext %s, want %s", o.Event, pt, o.Plaintext)
		}
		ev, d, _, err := client.DecryptMessage(want)
		if err != nil || ev != o.Event || (o.Data != nil && string(d) != *o.Data) || (o.Data == nil && d != nil) {
			t.Errorf("%s: DecryptMessage = %q %s %v", o.Event, ev, d, err)
		}
	}

	// Client to server (our extension): what a client on the original's
	// helper seals, the server opens.
	in, _ := json.Marshal(Payload{IV: v.Inbound.IV, CT: v.Inbound.CT})
	ev, d, _, err := server.DecryptMessage(in)
	if err != nil {
		t.Fatal(err)
	}
	if ev != "echo" || string(d) != `{"from":"client"}` {
		t.Fatalf("inbound: %q %s", ev, d)
	}
}

func TestDecodeBase64Strict(t *testing.T) {
	for _, s := range []string{"", "abc", "ab\ncd==", "ab!d", "a===", "ab=c"} {
		if _, err := DecodeBase64(s); err == nil {
			t.Errorf("%q decoded", s)
		}
	}
	if b, err := DecodeBase64("aGk="); err != nil || string(b) != "hi" {
		t.Fatal(b, err)
	}
}

func TestOpenRejectsTampering(t *testing.T) {
	key := make([]byte, KeySize)
	s, err := NewSession(key)
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Seal([]byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	ct := mustB64(t, p.CT)
	ct[0] ^= 1
	if _, err := s.Open(Payload{IV: p.IV, CT: base64.StdEncoding.EncodeToString(ct)}); err == nil {
		t.Fatal("tampered ciphertext opened")
	}
	if _, err := s.Open(Payload{IV: "AAAA", CT: p.CT}); err == nil {
		t.Fatal("short IV accepted")
	}
	if _, err := s.Open(Payload{IV: p.IV, CT: "AAAA"}); err == nil {
		t.Fatal("ciphertext shorter than the tag accepted")
	}
	other, _ := NewSession(append([]byte{1}, key[1:]...))
	if _, err := other.Open(p); err == nil {
		t.Fatal("opened with the wrong key")
	}
	if pt, err := s.Open(p); err != nil || string(pt) != "hello" {
		t.Fatal(pt, err)
	}
}

func TestAppendJSONStringLikeJSONStringify(t *testing.T) {
	cases := map[string]string{
		"plain":       `"plain"`,
		"q\"b\\":      `"q\"b\\"`,
		"\n\r\t\b\f":  `"\n\r\t\b\f"`,
		"\x01\x1f":    `"\u0001\u001f"`,
		"<&>":         `"<&>"`,
		"é👋":          `"é👋"`,
		"bad\xffutf8": `"bad\ufffdutf8"`,
	}
	for in, want := range cases {
		if got := string(protocol.AppendJSONString(nil, in)); got != want {
			t.Errorf("%q: got %s want %s", in, got, want)
		}
	}
}

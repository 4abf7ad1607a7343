// Package encryption is a ready-made, built-in implementation of the Ignis
// ECDH scheme for the server helper, interoperable with browser clients
// written for Ignis (WebCrypto: ECDH P-256, HKDF-SHA256, AES-256-GCM).
//
// The scheme, byte for byte as @venizia/ignis-helpers' ECDH helper:
//
//   - the client sends its public key with authenticate, as
//     `data.publicKey` = base64 of the raw uncompressed P-256 point (65 bytes;
//     a compressed one, 33 bytes, is taken too, as WebCrypto in the original
//     takes it); the key is matched exactly, as JavaScript reads
//     `data.publicKey`;
//   - the server makes a fresh key pair and a 32-byte random salt and
//     derives key = HKDF-SHA256(ECDH shared secret, salt,
//     info = "ignis-ecdh-p256-aes-256-gcm-v1"), 256 bits; `connected`
//     (sent in plain text) carries `serverPublicKey` and `salt` (base64);
//   - every later message to the client is
//     `{"event":"encrypted","data":{"iv":base64(12 random bytes),"ct":base64(ciphertext‖16-byte tag)}}`
//     whose plaintext is the JSON `{"event":…,"data":…}`.
//
// Extension (not in the original): a client may send the same
// `{"event":"encrypted","data":{iv,ct}}` to the server; it is decrypted and
// the `{event, data}` inside is dispatched as if sent in clear (heartbeat,
// join, leave, or the message callback, which receives the plain event).
// Undecryptable input is logged and dropped; the connection stays. Plain
// events from encrypted clients are still accepted, as in the original.
//
// Use:
//
//	enc := encryption.NewECDH(encryption.Options{})
//	h, err := helper.New(helper.Config{
//		Options:  helper.Options{RequireEncryption: true},
//		Handlers: enc.Handlers(helper.Handlers{Authenticate: auth}),
//	})
//
// Handlers installs the handshake handler (ECDH.Handshake), the outbound
// transformer (ECDH.Transform), the inbound transformer
// (ECDH.TransformInbound) and wraps the disconnect hook so that a client's
// key is dropped when it goes (ECDH.WrapClientDisconnected). Keys live only
// in memory and only while their client is connected: a handshake for a
// client that disconnected meanwhile keeps nothing, and a failed handshake
// (missing, malformed or wrong-curve key) stores nothing and closes the
// client with 4004 after "Encryption handshake failed".
//
// A message for a client without a key is dropped for that client, never
// sent in clear. The client side of the scheme, for Go programs and tests,
// is fxtest.EncryptedClient; examples/encrypted has a browser page.
package encryption

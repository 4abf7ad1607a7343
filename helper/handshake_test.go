package helper_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/protocol"
)

// encKit serves a helper that requires encryption. The handshake accepts
// {"pub":"ok"}, rejects other keys, fails on "error" and panics on "panic";
// the outbound transformer wraps data as {"wrapped": data} for encrypted
// clients, fails for event "fail-me", panics for "panic-me", and passes
// "as-is" through unchanged (nil result).
func encKit(t *testing.T, tr transport) (*kit, *[]helper.HandshakeRequest, *sync.Mutex) {
	var mu sync.Mutex
	var seen []helper.HandshakeRequest
	k := newKit(t, tr, func(c *helper.Config) {
		c.Options.RequireEncryption = true
		c.Handlers.Handshake = func(ctx context.Context, req helper.HandshakeRequest) (*helper.HandshakeResult, error) {
			mu.Lock()
			seen = append(seen, req)
			mu.Unlock()
			var d struct{ Pub string }
			_ = json.Unmarshal(req.Data, &d)
			switch d.Pub {
			case "ok":
				return &helper.HandshakeResult{ServerPublicKey: "server-pub", Salt: "salt-1"}, nil
			case "error":
				return nil, errors.New("malformed public key")
			case "panic":
				panic("handshake exploded")
			}
			return nil, nil
		}
		c.Handlers.OutboundTransformer = func(ctx context.Context, req helper.OutboundRequest) (*protocol.Message, error) {
			switch req.Event {
			case "fail-me":
				return nil, errors.New("cannot encrypt")
			case "panic-me":
				panic("transformer exploded")
			case "as-is":
				return nil, nil
			}
			if !req.Client.Encrypted {
				return nil, errors.New("transformer called for a plain client")
			}
			wrapped, _ := json.Marshal(map[string]any{"wrapped": req.Data, "for": req.Client.ID})
			return &protocol.Message{Event: protocol.EventEncrypted, Data: wrapped}, nil
		}
	})
	return k, &seen, &mu
}

// Spec "Connection lifecycle" 4.
func TestEncryptionHandshake(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k, seen, mu := encKit(t, tr)
		c := k.dial()
		_ = c.Emit(protocol.EventAuthenticate, map[string]any{"token": "valid-u1", "pub": "ok"})
		// connected goes out in plain text with the key material.
		m := expectEvent(t, c, protocol.EventConnected)
		var cd protocol.ConnectedData
		_ = json.Unmarshal(m.Data, &cd)
		if cd.ServerPublicKey != "server-pub" || cd.Salt != "salt-1" || cd.UserID != "u1" {
			t.Fatalf("connected %s", m.Data)
		}
		mu.Lock()
		req := (*seen)[0]
		mu.Unlock()
		if req.ClientID != cd.ID || req.UserID != "u1" || string(req.Data) != `{"pub":"ok","token":"valid-u1"}` {
			t.Fatalf("handshake request %+v", req)
		}
		if v, _ := k.h.GetClient(cd.ID); !v.Encrypted || v.ServerPublicKey != "server-pub" || v.Salt != "salt-1" {
			t.Fatalf("view %+v", v)
		}

		for _, tc := range []struct{ pub string }{{"wrong"}, {"error"}, {"panic"}} {
			c := k.dial()
			_ = c.Emit(protocol.EventAuthenticate, map[string]any{"token": "valid-u2", "pub": tc.pub})
			expectError(t, c, protocol.ErrTextHandshakeFailed)
			expectClose(t, c, protocol.CloseEncryptionRequired, protocol.ReasonEncryptionRequired)
		}
		// A rejected authentication never reaches the handshake.
		c4 := k.dial()
		_ = c4.Emit(protocol.EventAuthenticate, map[string]any{"token": "nope", "pub": "ok"})
		expectError(t, c4, protocol.ErrTextAuthFailed)
		expectClose(t, c4, protocol.CloseAuthFailed, protocol.ReasonAuthFailed)
		mu.Lock()
		n := len(*seen)
		mu.Unlock()
		if n != 4 {
			t.Fatalf("%d handshakes, want 4", n)
		}
		// Protocol errors to an encrypted client go through the
		// transformer, as in the original: its client decrypts everything
		// after connected.
		_ = c.SendText("not json")
		em := expectEvent(t, c, protocol.EventEncrypted)
		var wrapped struct {
			Wrapped protocol.ErrorData
		}
		if err := json.Unmarshal(em.Data, &wrapped); err != nil || wrapped.Wrapped.Message != protocol.ErrTextInvalidFormat {
			t.Fatalf("error to an encrypted client: %s", em.Data)
		}
	})
}

// Encrypted clients get messages through the outbound transformer, one by
// one; a failure drops the message for that client only.
func TestOutboundTransformer(t *testing.T) {
	both(t, func(t *testing.T, tr transport) {
		k, _, _ := encKit(t, tr)
		var encs []string
		var clients []interface {
			Expect(context.Context, string) (protocol.Message, error)
		}
		for i := 0; i < 3; i++ {
			c := k.dial()
			cd, err := c.Authenticate(context.Background(), map[string]any{"token": "valid-e", "pub": "ok"})
			if err != nil {
				t.Fatal(err)
			}
			encs = append(encs, cd.ID)
			clients = append(clients, c)
		}
		n, err := k.h.Broadcast("news", map[string]int{"n": 1})
		if err != nil || n != 3 {
			t.Fatalf("Broadcast = %d %v", n, err)
		}
		for i, c := range clients {
			got := dataOf(t, c, protocol.EventEncrypted)
			want := `{"for":"` + encs[i] + `","wrapped":{"n":1}}`
			if got != want {
				t.Fatalf("client %d got %s, want %s", i, got, want)
			}
		}
		if n, _ := k.h.Broadcast("as-is", 2); n != 3 {
			t.Fatalf("as-is reached %d", n)
		}
		for _, c := range clients {
			if got := dataOf(t, c, "as-is"); got != "2" {
				t.Fatalf("as-is data %s", got)
			}
		}
		for _, ev := range []string{"fail-me", "panic-me"} {
			if n, _ := k.h.Broadcast(ev, 3); n != 0 {
				t.Fatalf("%s reached %d", ev, n)
			}
		}
		_, _ = k.h.SendToClient(encs[0], "direct", "d")
		if got := dataOf(t, clients[0], protocol.EventEncrypted); got != `{"for":"`+encs[0]+`","wrapped":"d"}` {
			t.Fatalf("direct %s", got)
		}
	})
}

// What an inbound transformer returns passes the checks a plain message
// does: the frame's checks ran on ciphertext. Refused results are answered
// with the invalid-format error and never reach the message handler.
func TestInboundTransformerResultIsChecked(t *testing.T) {
	k := newKit(t, rawSocket, func(c *helper.Config) {
		c.Options.RequireEncryption = true
		c.Handlers.Handshake = func(context.Context, helper.HandshakeRequest) (*helper.HandshakeResult, error) {
			return &helper.HandshakeResult{ServerPublicKey: "server-pub", Salt: "salt"}, nil
		}
		c.Handlers.OutboundTransformer = func(_ context.Context, req helper.OutboundRequest) (*protocol.Message, error) {
			plain, _ := json.Marshal(map[string]any{"event": req.Event, "data": req.Data})
			return &protocol.Message{Event: protocol.EventEncrypted, Data: plain}, nil
		}
		// "Decrypts" by picking the data named by kind.
		c.Handlers.InboundTransformer = func(_ context.Context, req helper.InboundRequest) (protocol.Message, error) {
			var d struct{ Kind string }
			_ = json.Unmarshal(req.Message.Data, &d)
			out := map[string]string{
				"deep":     strings.Repeat("[", 500) + strings.Repeat("]", 500),
				"not-utf8": "\"\xff\xfe\"",
				"not-json": `{"a":`,
				"ok":       `{"fine":true}`,
			}[d.Kind]
			return protocol.Message{Event: "inner-" + d.Kind, Data: json.RawMessage(out)}, nil
		}
	})
	c, _ := k.login("u")
	for _, kind := range []string{"deep", "not-utf8", "not-json"} {
		_ = c.Emit(protocol.EventEncrypted, map[string]string{"kind": kind})
		m := expectEvent(t, c, protocol.EventEncrypted)
		var inner struct {
			Event string
			Data  protocol.ErrorData
		}
		if err := json.Unmarshal(m.Data, &inner); err != nil || inner.Event != protocol.EventError || inner.Data.Message != protocol.ErrTextInvalidFormat {
			t.Fatalf("%s: answer %s", kind, m.Data)
		}
	}
	_ = c.Emit(protocol.EventEncrypted, map[string]string{"kind": "ok"})
	k.rec.waitFor(t, "the good message", func() bool { return len(k.rec.messages) > 0 })
	k.rec.mu.Lock()
	defer k.rec.mu.Unlock()
	if len(k.rec.messages) != 1 || k.rec.messages[0].Message.Event != "inner-ok" {
		t.Fatalf("the handler got %+v", k.rec.messages)
	}
}

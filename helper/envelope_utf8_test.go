package helper_test

// From a mixed-fleet trial: what a client of ours gets for an envelope
// published on Redis should read as what a client of an original (Ignis)
// instance gets, since both sit on one Redis and a user may be on either.

import (
	"context"
	"testing"
	"time"

	"github.com/fxws/websocket/broker"
	"github.com/fxws/websocket/helper"
	"github.com/fxws/websocket/protocol"
)

func envelopeKit(t *testing.T) (pub func(data string), c interface{}, get func(event string) string) {
	t.Helper()
	hub := broker.NewMemoryHub()
	k := newKit(t, rawSocket, func(c *helper.Config) { c.Broker = hub.NewBroker() })
	cl, cd := k.login("u1")
	em := hub.NewBroker()
	if err := em.Start(context.Background(), func(string, []byte) {}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	raw := func(payload string) {
		t.Helper()
		if err := em.Publish(context.Background(), protocol.ClientChannel(cd.ID), []byte(payload)); err != nil {
			t.Fatal(err)
		}
	}
	_ = cd
	return func(data string) {
			raw(`{"serverId":"emitter","type":"client","target":"` + cd.ID + `","event":"e","data":` + data + `}`)
		}, cl, func(event string) string {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			m, err := cl.Expect(ctx, event)
			if err != nil {
				t.Fatalf("expected %q: %v", event, err)
			}
			return string(m.Data)
		}
}

// Invalid UTF-8 in an envelope's data: the original (Bun's UTF-8 decoding of
// the Redis message) writes one U+FFFD per maximal invalid subsequence, as
// the WHATWG decoder does: "\xff\xfe" is two, an encoded surrogate
// "\xed\xa0\x80" three, an overlong "\xc0\xaf" two. We made one of each
// run, so the same message read differently on the two (observed against
// Ignis 0.0.7 on Bun 1.4.5 in the trial).
func TestEnvelopeInvalidUTF8ReplacedAsTheOriginal(t *testing.T) {
	const r = "\uFFFD"
	for _, tc := range []struct{ name, in, want string }{
		{"ff", "\"a\xffb\"", `"a` + r + `b"`},
		{"truncated", "\"a\xe2\x82b\"", `"a` + r + `b"`},
		{"ff-fe", "\"a\xff\xfeb\"", `"a` + r + r + `b"`},
		{"surrogate", "\"a\xed\xa0\x80b\"", `"a` + r + r + r + `b"`},
		{"overlong", "\"a\xc0\xafb\"", `"a` + r + r + `b"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub, _, get := envelopeKit(t)
			pub(tc.in)
			if got := get("e"); got != tc.want {
				t.Errorf("data %q, want %q (what a client of an Ignis instance gets)", got, tc.want)
			}
		})
	}
}

package protocol

import (
	"encoding/json"
	"slices"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// FuzzEnvelopeRoundTrip feeds DecodeEnvelope anything a Redis channel could
// carry. An accepted envelope must have come from a JSON object with a
// string serverId and event; encoding it and decoding it again must give
// the same envelope, and its channel must be computable. Seeds:
// testdata/fuzz/FuzzEnvelopeRoundTrip.
func FuzzEnvelopeRoundTrip(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := DecodeEnvelope(b)
		if err != nil {
			return
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal(b, &obj) != nil {
			t.Fatalf("accepted an envelope that is not a JSON object: %q", b)
		}
		for _, k := range []string{"serverId", "event"} {
			if v := obj[k]; len(v) == 0 || v[0] != '"' {
				t.Fatalf("accepted an envelope whose %s is not a string: %q", k, b)
			}
		}
		if !utf8.Valid(env.Data) {
			t.Fatalf("envelope data is not UTF-8 (it would go out in text frames): %q", env.Data)
		}
		_ = env.Channel()
		again := AppendEnvelope(nil, env)
		if marshalled, err := json.Marshal(env); err != nil {
			t.Fatalf("re-encoding %+v: %v", env, err)
		} else if !jsonEqual(again, marshalled) {
			t.Fatalf("AppendEnvelope %s, json.Marshal %s", again, marshalled)
		}
		env2, err := DecodeEnvelope(again)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", again, err)
		}
		// Data is kept raw, so compare it by value; invalid UTF-8 in
		// strings becomes U+FFFD on the way, as JSON.parse would make it.
		if env2.ServerID != env.ServerID || env2.Event != env.Event || env2.Type != env.Type ||
			env2.Target != env.Target || !slices.Equal(env2.Exclude, env.Exclude) || env2.Latest != env.Latest {
			t.Fatalf("round trip changed the envelope:\n%+v\n%+v", env, env2)
		}
		var d1, d2 any
		if len(env.Data) > 0 {
			if json.Unmarshal(env.Data, &d1) != nil || json.Unmarshal(env2.Data, &d2) != nil {
				t.Fatalf("data not JSON after a round trip: %s / %s", env.Data, env2.Data)
			}
		}
	})
}

// jsonEqual reports whether a and b hold the same JSON value.
func jsonEqual(a, b []byte) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	ja, _ := json.Marshal(va)
	jb, _ := json.Marshal(vb)
	return string(ja) == string(jb)
}

// FuzzValidRoomName checks the room-name rule against its definition: a
// non-empty UTF-8 string of at most 256 UTF-16 code units (JavaScript's
// length) that does not start with "ws:".
func FuzzValidRoomName(f *testing.F) {
	for _, s := range []string{"a", "", "ws:x", "wsx", "\xff", "é", "\U0001D11E"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := s != "" && utf8.ValidString(s) && len(utf16.Encode([]rune(s))) <= MaxRoomNameLength &&
			!(len(s) >= 3 && s[:3] == InternalPrefix)
		if got := ValidRoomName(s); got != want {
			t.Fatalf("ValidRoomName(%q) = %v, want %v", s, got, want)
		}
	})
}

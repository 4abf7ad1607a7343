package protocol

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestChannels(t *testing.T) {
	cases := []struct {
		typ    MessageType
		target string
		want   string
	}{
		{TypeBroadcast, "", "ws:broadcast"},
		{TypeBroadcast, "ignored", "ws:broadcast"},
		{TypeRoom, "lobby", "ws:room:lobby"},
		{TypeClient, "c1", "ws:client:c1"},
		{TypeUser, "u1", "ws:user:u1"},
		{MessageType("bogus"), "x", ""},
	}
	for _, c := range cases {
		if got := c.typ.Channel(c.target); got != c.want {
			t.Errorf("%s/%s: %q, want %q", c.typ, c.target, got, c.want)
		}
		if c.typ.Valid() != (c.want != "") {
			t.Errorf("%s: Valid = %v", c.typ, c.typ.Valid())
		}
	}
	env := Envelope{Type: TypeUser, Target: "u9"}
	if env.Channel() != "ws:user:u9" {
		t.Fatal(env.Channel())
	}
	if ChannelRoomPattern != "ws:room:*" || ChannelClientPattern != "ws:client:*" || ChannelUserPattern != "ws:user:*" {
		t.Fatal("patterns differ from the original's")
	}
}

func TestSystemEvents(t *testing.T) {
	for _, e := range []string{"authenticate", "connected", "disconnect", "join", "leave", "error", "heartbeat", "encrypted"} {
		if !IsSystemEvent(e) {
			t.Errorf("%s is a system event", e)
		}
	}
	for _, e := range []string{"", "chat", "Connected", "ws:internal:broadcast"} {
		if IsSystemEvent(e) {
			t.Errorf("%q is not a system event", e)
		}
	}
}

func TestDefaults(t *testing.T) {
	a := DefaultRooms()
	a[0] = "changed"
	if b := DefaultRooms(); !slices.Equal(b, []string{"ws-default", "ws-notification"}) {
		t.Fatalf("DefaultRooms shares its slice: %v", b)
	}
	if DefaultMaxPayloadLength != 131072 || DefaultBackpressureLimit != 1<<20 || DefaultAuthTimeout.Milliseconds() != 5000 ||
		DefaultHeartbeatInterval.Milliseconds() != 30000 || DefaultHeartbeatTimeout.Milliseconds() != 90000 ||
		DefaultIdleTimeout.Seconds() != 60 || DefaultEncryptedBatchLimit != 10 || DefaultPath != "/ws" ||
		InternalBroadcastTopic != "ws:internal:broadcast" || DefaultIdentifier != "WEBSOCKET_SERVER" {
		t.Fatal("defaults differ from spec.md")
	}
}

// ValidRoomName counts length in UTF-16 code units, as JavaScript does.
func TestValidRoomName(t *testing.T) {
	cases := []struct {
		name string
		want bool
	}{
		{"lobby", true},
		{"", false},
		{"ws:", false},
		{"ws:internal:broadcast", false},
		{"WS:upper", true},
		{" ws:space", true},
		{strings.Repeat("a", 256), true},
		{strings.Repeat("a", 257), false},
		{strings.Repeat("é", 256), true},  // 512 bytes, 256 units
		{strings.Repeat("é", 257), false}, // 257 units
		{strings.Repeat("𝄞", 128), true},  // 512 bytes, 256 units (surrogate pairs)
		{strings.Repeat("𝄞", 128) + "a", false},
		{strings.Repeat("a", 255) + "𝄞", false}, // 257 units
		{"bad\xff", false},
	}
	for _, c := range cases {
		if got := ValidRoomName(c.name); got != c.want {
			t.Errorf("ValidRoomName(%.20q… len %d) = %v, want %v", c.name, len(c.name), got, c.want)
		}
	}
}

func TestDecodeEnvelope(t *testing.T) {
	good := []struct {
		in   string
		want Envelope
	}{
		{`{"serverId":"s1","type":"room","target":"r","event":"e","data":{"a":1},"exclude":["c1"]}`,
			Envelope{ServerID: "s1", Type: TypeRoom, Target: "r", Event: "e", Data: json.RawMessage(`{"a":1}`), Exclude: []string{"c1"}}},
		{`{"serverId":"emitter","event":"e"}`, Envelope{ServerID: "emitter", Event: "e"}},
		{`{"serverId":"s","event":"e","type":5,"target":7,"exclude":[1,"c2",null]}`,
			Envelope{ServerID: "s", Event: "e", Exclude: []string{"c2"}}},
		{`{"serverId":"s","event":"e","exclude":"c1"}`, Envelope{ServerID: "s", Event: "e"}},
		{`{"serverId":"s","event":"e","latest":"cursor:u1"}`, Envelope{ServerID: "s", Event: "e", Latest: "cursor:u1"}},
		{`{"serverId":"s","event":"e","latest":7}`, Envelope{ServerID: "s", Event: "e"}},
		{`{"serverId":"","event":""}`, Envelope{}},
	}
	for _, g := range good {
		env, err := DecodeEnvelope([]byte(g.in))
		if err != nil {
			t.Errorf("%s: %v", g.in, err)
			continue
		}
		if env.ServerID != g.want.ServerID || env.Type != g.want.Type || env.Target != g.want.Target ||
			env.Event != g.want.Event || string(env.Data) != string(g.want.Data) || !slices.Equal(env.Exclude, g.want.Exclude) || env.Latest != g.want.Latest {
			t.Errorf("%s: %+v, want %+v", g.in, env, g.want)
		}
	}
	for _, bad := range []string{``, `null`, `[]`, `"s"`, `{`, `{"event":"e"}`, `{"serverId":"s"}`,
		`{"serverId":1,"event":"e"}`, `{"serverId":"s","event":null}`, `{"serverId":"s","event":{}}`} {
		if _, err := DecodeEnvelope([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// An envelope encoded by us decodes to itself, with the original's field
// names on the wire.
func TestEnvelopeRoundTrip(t *testing.T) {
	in := Envelope{ServerID: "s", Type: TypeClient, Target: "c", Event: "e", Data: json.RawMessage(`[1]`), Exclude: []string{"x"}, Latest: "k"}
	b, err := json.Marshal(&in)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"serverId":"s","type":"client","target":"c","event":"e","data":[1],"exclude":["x"],"latest":"k"}` {
		t.Fatal(string(b))
	}
	out, err := DecodeEnvelope(b)
	if err != nil || out.Target != "c" || string(out.Data) != "[1]" || out.Latest != "k" {
		t.Fatal(out, err)
	}
	m, _ := json.Marshal(Message{Event: "e"})
	if string(m) != `{"event":"e"}` {
		t.Fatal(string(m))
	}
	cd, _ := json.Marshal(ConnectedData{ID: "i", Time: "t"})
	if string(cd) != `{"id":"i","time":"t"}` {
		t.Fatal(string(cd))
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add([]byte(`{"serverId":"s","type":"room","target":"r","event":"e","data":1,"exclude":["a"]}`))
	f.Add([]byte(`{"serverId":"s","event":"e","exclude":[1,{}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := DecodeEnvelope(b)
		if err == nil && env == nil {
			t.Fatal("nil envelope without error")
		}
	})
}

func TestAppendEnvelopeMatchesMarshal(t *testing.T) {
	for _, env := range []Envelope{
		{ServerID: "s1", Type: TypeBroadcast, Event: "tick", Data: json.RawMessage(`{"n":1}`)},
		{ServerID: "s1", Type: TypeRoom, Target: "room-1", Event: "chat", Data: json.RawMessage(`"hi"`), Exclude: []string{"c1", "c2"}},
		{ServerID: "s1", Type: TypeClient, Target: "c1", Event: "e"},
		{ServerID: "s1", Type: TypeRoom, Target: "doc", Event: "cursor", Data: json.RawMessage(`[3,4]`), Latest: "cursor:\"u1\""},
		{ServerID: "é\"\\\n", Type: TypeUser, Target: "u\t1", Event: "ü", Data: json.RawMessage(`[1,2]`)},
	} {
		want, err := json.Marshal(&env)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendEnvelope(nil, &env); string(got) != string(want) {
			t.Errorf("AppendEnvelope = %s, json.Marshal = %s", got, want)
		}
	}
}

func TestIsClientID(t *testing.T) {
	for s, want := range map[string]bool{
		"1a8b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d":  true,
		"00000000-0000-0000-0000-000000000000":  true,
		"1A8B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D":  false, // not the form ids take
		"1a8b2c3d4e5f4a6b8c7d9e0f1a2b3c4d":      false,
		"1a8b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4":   false,
		"1a8b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4dd": false,
		"1a8b2c3d-4e5f-4a6b-8c7d_9e0f1a2b3c4d":  false,
		"1a8b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4g":  false,
		"lobby":                                 false,
	} {
		if got := IsClientID(s); got != want {
			t.Errorf("IsClientID(%q) = %v, want %v", s, got, want)
		}
	}
}

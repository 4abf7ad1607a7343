package protocol_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"strings"
	"testing"

	"github.com/fxws/websocket/protocol"
)

// reference is what ObjectFields replaced: encoding/json into a map.
func reference(b []byte) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	err := json.Unmarshal(b, &m)
	return m, err
}

var memberCases = []string{
	`{}`, ` { } `, `null`, ` null `, `{"event":"echo","data":{"a":[1,2,{"b":null}]}}`,
	`{"event":"x","event":"y"}`, `{"\u0065vent":"escaped key"}`, `{"EVENT":1}`,
	`{"a":-0.5e+10,"b":0,"c":-1,"d":1.25E-3,"e":true,"f":false,"g":"\"\\\/\b\f\n\r\t\u00e9"}`,
	`{"k\u00e9":1,"é":2}`, "{\"bad utf8 \xff\":1}", "{\"v\":\"\xff\xfe\"}",
	`{"a":[]}`, `{"a":[ ]}`, `{"a":{}}`, `{"a" : [ 1 , 2 ] , "b" : { "c" : [ { } ] } }`,
	// invalid
	``, ` `, `{`, `}`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":1 "b":2}`, `{a:1}`, `{'a':1}`,
	`{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":-}`, `{"a":1e}`, `{"a":+1}`, `{"a":tru}`,
	`{"a":nul}`, `{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"\u12g4"}`, "{\"a\":\"tab\there\"}",
	`{"a":[1,2}`, `{"a":[1,2]]}`, `{"a":{"b":1]}`, `{} {}`, `{}x`, `[1]`, `"s"`, `1`, `true`,
	`nullx`, `{"a":"unterminated}`, `{"a":[`, `{"a":"\`,
}

func TestObjectFieldsMatchesEncodingJSON(t *testing.T) {
	for _, in := range memberCases {
		compareWithReference(t, []byte(in))
	}
}

func compareWithReference(t *testing.T, in []byte) {
	t.Helper()
	shown := string(in)
	if len(shown) > 200 {
		shown = shown[:200] + "…"
	}
	want, wantErr := reference(in)
	got, gotErr := protocol.ObjectFields(in)
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("%q: error %v, encoding/json says %v", shown, gotErr, wantErr)
	}
	if wantErr != nil {
		return
	}
	if (want == nil) != (got == nil) {
		t.Fatalf("%q: got map %v, encoding/json %v", shown, got, want)
	}
	if !maps.EqualFunc(want, got, func(a, b json.RawMessage) bool { return bytes.Equal(a, b) }) {
		t.Fatalf("%q: got %q, encoding/json %q", shown, got, want)
	}
}

var arrayCases = []string{
	`[]`, ` [ ] `, `null`, `["a","b"]`, ` [ "a" , 1 , {"x":[2]} , [] , null , true ] `, `[[[]]]`,
	"[\"\xff\"]", `["\u00e9\n"]`, `[-0.5e+10,0]`,
	// invalid
	``, `[`, `]`, `[,]`, `[1,]`, `[1 2]`, `["a"`, `[1]]`, `[1] [2]`, `[01]`, `[nul]`, `{}`, `"s"`, `1`,
	`nullx`, `[{"a":}]`, `["\x"]`,
}

// referenceElements is encoding/json's reading of an array, raw.
func referenceElements(b []byte) ([]json.RawMessage, error) {
	var a []json.RawMessage
	err := json.Unmarshal(b, &a)
	return a, err
}

func compareElementsWithReference(t *testing.T, in []byte) {
	t.Helper()
	want, wantErr := referenceElements(in)
	var got []json.RawMessage
	gotErr := protocol.ArrayElements(in, func(v json.RawMessage) bool {
		got = append(got, v)
		return true
	})
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("%.200q: error %v, encoding/json says %v", in, gotErr, wantErr)
	}
	if wantErr != nil {
		return
	}
	if len(want) != len(got) {
		t.Fatalf("%.200q: %d elements, encoding/json %d", in, len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(want[i], got[i]) {
			t.Fatalf("%.200q: element %d is %q, encoding/json %q", in, i, got[i], want[i])
		}
	}
}

func TestArrayElementsMatchesEncodingJSON(t *testing.T) {
	for _, in := range arrayCases {
		compareElementsWithReference(t, []byte(in))
	}
	for _, depth := range []int{9999, 10000, 10001} {
		compareElementsWithReference(t, []byte(strings.Repeat("[", depth)+strings.Repeat("]", depth)))
	}
}

func TestArrayElementsStopsWhenTold(t *testing.T) {
	var seen []string
	err := protocol.ArrayElements([]byte(`["a","b","c",`+strings.Repeat(`"x",`, 1000)+`"z"]`), func(v json.RawMessage) bool {
		seen = append(seen, string(v))
		return len(seen) < 2
	})
	if err != nil || strings.Join(seen, ",") != `"a","b"` {
		t.Fatalf("saw %v, err %v; want the first two", seen, err)
	}
	in := []byte(`["public-1", "public-2", {"not":"a name"}]`)
	allocs := testing.AllocsPerRun(100, func() {
		_ = protocol.ArrayElements(in, func(v json.RawMessage) bool { return true })
	})
	if allocs != 0 {
		t.Fatalf("ArrayElements allocated %.0f times", allocs)
	}
}

// FuzzArrayElements checks ArrayElements against encoding/json: the same
// inputs fail, and the others give the same elements.
func FuzzArrayElements(f *testing.F) {
	for _, in := range arrayCases {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		compareElementsWithReference(t, in)
	})
}

func TestObjectMembersInOrderWithDuplicates(t *testing.T) {
	var keys, values []string
	err := protocol.ObjectMembers([]byte(`{"b":1, "a" :[2], "b":"3"}`), func(k []byte, v json.RawMessage) {
		keys = append(keys, string(k))
		values = append(values, string(v))
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(keys, ",") != "b,a,b" || strings.Join(values, ",") != `1,[2],"3"` {
		t.Fatalf("members %v = %v", keys, values)
	}
}

func TestObjectMembersDepthLikeEncodingJSON(t *testing.T) {
	// encoding/json accepts 10000 levels and refuses 10001; the object
	// itself is the first.
	for _, depth := range []int{9999, 10000, 10001} {
		inner := depth - 1
		in := `{"a":` + strings.Repeat("[", inner) + strings.Repeat("]", inner) + `}`
		compareWithReference(t, []byte(in))
	}
}

func TestObjectMembersAllocatesNothingForPlainKeys(t *testing.T) {
	in := []byte(`{"event":"echo","data":{"text":"hello","n":[1,2,3]},"id":"m1"}`)
	var n int
	allocs := testing.AllocsPerRun(100, func() {
		_ = protocol.ObjectMembers(in, func(k []byte, v json.RawMessage) { n += len(k) + len(v) })
	})
	if allocs != 0 {
		t.Fatalf("ObjectMembers allocated %.0f times per message", allocs)
	}
}

func TestStringValue(t *testing.T) {
	for in, want := range map[string]string{
		`"plain"`: "plain", `"é"`: "é", `"a\nb"`: "a\nb", `"\u0041"`: "A", "\"\xff\"": "\uFFFD", `""`: "",
	} {
		got, ok := protocol.StringValue(json.RawMessage(in))
		if !ok || got != want {
			t.Errorf("StringValue(%s) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{``, `1`, `null`, `{"a":1}`, `"`} {
		if _, ok := protocol.StringValue(json.RawMessage(in)); ok {
			t.Errorf("StringValue(%s) is a string", in)
		}
	}
}

// FuzzObjectFields checks the scanner against encoding/json: the same
// inputs fail, and the others give the same members.
func FuzzObjectFields(f *testing.F) {
	for _, in := range memberCases {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		compareWithReference(t, in)
	})
}

package protocol

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestJSONDepthExceeds(t *testing.T) {
	cases := []struct {
		in   string
		max  int
		want bool
	}{
		{`{}`, 1, false},
		{`{"a":[1,2,{"b":3}]}`, 3, false},
		{`{"a":[1,2,{"b":3}]}`, 2, true},
		{`"[[[[[[["`, 1, false},             // brackets inside a string
		{`{"a":"\"[[[[["}`, 1, false},       // escaped quote does not end the string
		{`{"a":"\\"}`, 1, false},            // escaped backslash does end it
		{`{"a":"\\",  "b":[[1]]}`, 2, true}, // ... and what follows counts
		{strings.Repeat("[", 100) + strings.Repeat("]", 100), 99, true},
		{strings.Repeat("[", 100) + strings.Repeat("]", 100), 100, false},
	}
	for _, c := range cases {
		if got := JSONDepthExceeds([]byte(c.in), c.max); got != c.want {
			t.Errorf("JSONDepthExceeds(%q, %d) = %v, want %v", c.in, c.max, got, c.want)
		}
	}
}

// FuzzJSONDepthExceeds checks the scanner against encoding/json on valid
// documents: it must agree on whether the nesting passes max.
func FuzzJSONDepthExceeds(f *testing.F) {
	for _, s := range []string{`{}`, `[[["a"]]]`, `{"a":"[\"]"}`, `{"x":{"y":{"z":[1,{"w":"}"}]}}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			JSONDepthExceeds(b, 8) // must not panic
			return
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			return
		}
		want := depthOf(v) > 8
		if got := JSONDepthExceeds(b, 8); got != want {
			t.Fatalf("JSONDepthExceeds(%q) = %v, want %v", b, got, want)
		}
	})
}

func depthOf(v any) int {
	best := 0
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			best = max(best, depthOf(e))
		}
		return best + 1
	case map[string]any:
		for _, e := range x {
			best = max(best, depthOf(e))
		}
		return best + 1
	}
	return 0
}

// A join naming 7342 rooms (about 150 KB, nearly all of it inside strings):
// the scan every inbound message gets before it is decoded.
func BenchmarkJSONDepthExceeds(b *testing.B) {
	names := make([]string, 7342)
	for i := range names {
		names[i] = "public-3-" + strings.Repeat("x", i%8)
	}
	msg, _ := json.Marshal(map[string]any{"event": "join", "data": map[string]any{"rooms": names}})
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if JSONDepthExceeds(msg, 64) {
			b.Fatal("exceeded")
		}
	}
}

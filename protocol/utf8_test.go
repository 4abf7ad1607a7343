package protocol

import (
	"bytes"
	"sync"
	"testing"
	"unicode/utf8"
)

// The WHATWG decoder's replacement, as JavaScript's TextDecoder makes it
// (values checked against the original on Bun in a mixed-fleet trial, and
// the WHATWG Encoding Standard's examples).
func TestReplaceInvalidUTF8(t *testing.T) {
	const r = "\uFFFD"
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"é😀", "é😀"},
		{"a\xffb", "a" + r + "b"},
		{"a\xe2\x82b", "a" + r + "b"},                     // truncated: one
		{"a\xff\xfeb", "a" + r + r + "b"},                 // two bytes that never start: two
		{"a\xed\xa0\x80b", "a" + r + r + r + "b"},         // a surrogate: ED then A0 out of range
		{"a\xc0\xafb", "a" + r + r + "b"},                 // overlong: C0 never starts
		{"a\xe0\x80\x80b", "a" + r + r + r + "b"},         // overlong 3-byte: E0 needs A0–BF
		{"a\xf4\x90\x80\x80b", "a" + r + r + r + r + "b"}, // past U+10FFFF
		{"a\xf0\x9f\x98b", "a" + r + "b"},                 // a 4-byte sequence cut short
		{"\xf0\x9f\x98", r},                               // at the end
		{"\xe2\x82\xe2\x82\xac", r + "€"},                 // the byte that broke it starts over
		{"\x80\x80", r + r},
	} {
		got := ReplaceInvalidUTF8([]byte(tc.in))
		if string(got) != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
}

// validPrefixes holds every proper prefix of every UTF-8 encoding of a
// scalar value, built from Go's encoder: a reference for the maximal
// subparts that owes nothing to the decoder under test.
var validPrefixes = sync.OnceValue(func() map[string]bool {
	m := make(map[string]bool)
	var buf [utf8.UTFMax]byte
	for r := rune(0x80); r <= utf8.MaxRune; r++ {
		if r >= 0xD800 && r <= 0xDFFF {
			continue
		}
		n := utf8.EncodeRune(buf[:], r)
		for k := 1; k < n; k++ {
			m[string(buf[:k])] = true
		}
	}
	return m
})

// referenceReplace replaces, at each place Go's decoder finds no rune, the
// longest start of a valid encoding there (or one byte) with U+FFFD.
func referenceReplace(b []byte) []byte {
	var out []byte
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || n > 1 {
			out = append(out, b[i:i+n]...)
			i += n
			continue
		}
		k := 1
		for j := min(3, len(b)-i); j > 1; j-- {
			if validPrefixes()[string(b[i:i+j])] {
				k = j
				break
			}
		}
		out = append(out, "\uFFFD"...)
		i += k
	}
	return out
}

// Against Go's own decoder: the output is valid, valid input is kept, and
// the runes of valid stretches are untouched; and against the reference
// built from the encoder, byte for byte.
func FuzzReplaceInvalidUTF8(f *testing.F) {
	for _, s := range []string{"a\xff\xfeb", "\xed\xa0\x80", "\xf0\x9f\x98", "é😀", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := ReplaceInvalidUTF8(b)
		if !utf8.Valid(got) {
			t.Fatalf("%q -> %q is not valid UTF-8", b, got)
		}
		if utf8.Valid(b) && !bytes.Equal(got, b) {
			t.Fatalf("valid %q changed to %q", b, got)
		}
		if want := referenceReplace(b); !utf8.Valid(b) && !bytes.Equal(got, want) {
			t.Fatalf("%q -> %q, the reference makes %q", b, got, want)
		}
		// Without replacement characters in the input, removing them from
		// the output leaves the valid runes of the input, in order.
		if !bytes.Contains(b, []byte("\uFFFD")) {
			var valid []byte
			for i := 0; i < len(b); {
				r, n := utf8.DecodeRune(b[i:])
				if r != utf8.RuneError || n > 1 {
					valid = append(valid, b[i:i+n]...)
				}
				i += n
			}
			if kept := bytes.ReplaceAll(got, []byte("\uFFFD"), nil); !bytes.Equal(kept, valid) {
				t.Fatalf("%q -> %q: the valid runes %q were not kept", b, got, valid)
			}
		}
	})
}

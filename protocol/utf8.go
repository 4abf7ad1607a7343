package protocol

import "unicode/utf8"

// ReplaceInvalidUTF8 returns b with each ill-formed sequence replaced by
// U+FFFD as a WHATWG UTF-8 decoder does (JavaScript's TextDecoder, and so
// the original's decoding of a Redis message): one U+FFFD for each maximal
// subpart, the longest start of a well-formed sequence, or a single byte.
// "\xff\xfe" is two, an encoded surrogate "\xed\xa0\x80" three, an
// overlong "\xc0\xaf" two, a truncated "\xe2\x82" one. (bytes.ToValidUTF8
// makes one of each run, so a message read differently on the original's
// instances and on ours; found in a mixed-fleet trial.) Valid input is
// returned as it is.
func ReplaceInvalidUTF8(b []byte) []byte {
	if utf8.Valid(b) {
		return b
	}
	out := make([]byte, 0, len(b)+8)
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			out = append(out, c)
			i++
			continue
		}
		need, lo, hi := 0, byte(0x80), byte(0xBF)
		switch {
		case c >= 0xC2 && c <= 0xDF:
			need = 1
		case c == 0xE0:
			need, lo = 2, 0xA0
		case c == 0xED:
			need, hi = 2, 0x9F
		case c >= 0xE1 && c <= 0xEF:
			need = 2
		case c == 0xF0:
			need, lo = 3, 0x90
		case c == 0xF4:
			need, hi = 3, 0x8F
		case c >= 0xF1 && c <= 0xF3:
			need = 3
		default: // a continuation byte, C0, C1, F5–FF: never a start
			out = append(out, "\uFFFD"...)
			i++
			continue
		}
		j := i + 1
		for k := 0; k < need; k++ {
			if j >= len(b) || b[j] < lo || b[j] > hi {
				break
			}
			lo, hi = 0x80, 0xBF // only the second byte has narrower bounds
			j++
		}
		if j-i == need+1 {
			out = append(out, b[i:j]...)
		} else {
			out = append(out, "\uFFFD"...) // the maximal subpart; the byte that broke it starts over
		}
		i = j
	}
	return out
}

package protocol

// JSONDepthExceeds reports whether the JSON text b nests arrays and objects
// deeper than max. It scans bytes without decoding, so a hostile message of
// a hundred thousand brackets is refused in microseconds, before any
// decoder or application handler sees it. Invalid JSON is not its concern
// (the decoder rejects it); brackets inside strings do not count.
func JSONDepthExceeds(b []byte, max int) bool {
	depth := 0
	inString := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			switch c {
			case '\\':
				i++ // skip the escaped byte
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			depth++
			if depth > max {
				return true
			}
		case ']', '}':
			depth--
		}
	}
	return false
}

package protocol

// JSONDepthExceeds reports whether the JSON text b nests arrays and objects
// deeper than max. It scans bytes without decoding, so a hostile message of
// a hundred thousand brackets is refused in microseconds, before any
// decoder or application handler sees it. Invalid JSON is not its concern
// (the decoder rejects it); brackets inside strings do not count.
func JSONDepthExceeds(b []byte, max int) bool {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			// A string's bytes are skipped in a loop of their own: one
			// branch per byte that the processor predicts, where the
			// structural switch mispredicted at every string boundary.
			for i++; i < len(b); i++ {
				if c := b[i]; c == '"' {
					break
				} else if c == '\\' {
					i++ // skip the escaped byte
				}
			}
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

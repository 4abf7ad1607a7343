package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// maxMemberDepth is how deep ObjectMembers follows nesting, as deep as
// encoding/json does. The helper refuses deeper messages before they get
// here (Limits.MaxJSONDepth).
const maxMemberDepth = 10000

var (
	errNotObject = errors.New("protocol: JSON value is not an object")
	errNotArray  = errors.New("protocol: JSON value is not an array")
)

// ObjectMembers calls member for each member of the JSON object b, in order,
// with the key decoded and the value raw (a sub-slice of b). It validates all
// of b as encoding/json does (the whole text must be one valid JSON value),
// but decodes nothing beyond the keys, and allocates nothing unless a key
// holds escapes: it is the first step of every inbound message and every
// Redis envelope. Keys match as property names do in JavaScript, exactly.
// JSON null has no members; any other non-object is an error. key is only
// valid during the call; value shares b's memory (copy it to keep it past
// b's reuse).
func ObjectMembers(b []byte, member func(key []byte, value json.RawMessage)) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return notContainer(b, i, errNotObject)
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		for {
			if i >= len(b) || b[i] != '"' {
				return syntaxError(b, i, "looking for beginning of object key string")
			}
			kEnd, escaped, err := scanString(b, i)
			if err != nil {
				return err
			}
			key := b[i+1 : kEnd-1]
			if escaped || !isASCII(key) {
				// Escapes to decode, or bytes that may not be UTF-8
				// (decoding replaces them, as encoding/json does).
				var s string
				if err := json.Unmarshal(b[i:kEnd], &s); err != nil {
					return err
				}
				key = []byte(s)
			}
			i = skipSpace(b, kEnd)
			if i >= len(b) || b[i] != ':' {
				return syntaxError(b, i, "after object key")
			}
			vStart := skipSpace(b, i+1)
			vEnd, err := scanValue(b, vStart, 1)
			if err != nil {
				return err
			}
			member(key, b[vStart:vEnd:vEnd])
			i = skipSpace(b, vEnd)
			if i < len(b) && b[i] == ',' {
				i = skipSpace(b, i+1)
				continue
			}
			if i < len(b) && b[i] == '}' {
				i++
				break
			}
			return syntaxError(b, i, "after object key:value pair")
		}
	}
	if i = skipSpace(b, i); i != len(b) {
		return syntaxError(b, i, "after top-level value")
	}
	return nil
}

// ArrayElements calls element for each element of the JSON array b, in
// order, raw (a sub-slice of b), until element returns false. It validates b
// as encoding/json does up to where it stops, and allocates nothing: a
// client's list of room names is read one name at a time, so a join that
// names thousands of rooms costs no more than the names a server takes.
// JSON null has no elements; any other non-array is an error.
func ArrayElements(b []byte, element func(value json.RawMessage) bool) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return notContainer(b, i, errNotArray)
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		i++
	} else {
		for {
			end, err := scanValue(b, i, 1)
			if err != nil {
				return err
			}
			if !element(b[i:end:end]) {
				return nil
			}
			i = skipSpace(b, end)
			if i < len(b) && b[i] == ',' {
				i = skipSpace(b, i+1)
				continue
			}
			if i < len(b) && b[i] == ']' {
				i++
				break
			}
			return syntaxError(b, i, "after array element")
		}
	}
	if i = skipSpace(b, i); i != len(b) {
		return syntaxError(b, i, "after top-level value")
	}
	return nil
}

// notContainer handles a text whose value, at b[i], is not the container
// asked for: a syntax error if the text is not one valid JSON value, nothing
// for null (no members or elements), else wrongKind.
func notContainer(b []byte, i int, wrongKind error) error {
	end, err := scanValue(b, i, 0)
	if err != nil {
		return err
	}
	if skipSpace(b, end) != len(b) {
		return syntaxError(b, skipSpace(b, end), "after top-level value")
	}
	if b[i] == 'n' {
		return nil
	}
	return wrongKind
}

// ObjectFields decodes a JSON object into its members, raw. Keys match
// exactly, as property names do in JavaScript (encoding/json would match a
// struct field case-insensitively, so `"EVENT"` would pass for `"event"`);
// of duplicate keys the last wins, as with JSON.parse. JSON null yields no
// members. The values share b's memory.
func ObjectFields(b []byte) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	err := ObjectMembers(b, func(key []byte, value json.RawMessage) {
		if m == nil {
			m = make(map[string]json.RawMessage)
		}
		m[string(key)] = value
	})
	if err != nil {
		return nil, err
	}
	if m == nil && b[skipSpace(b, 0)] == '{' {
		m = map[string]json.RawMessage{}
	}
	return m, nil
}

// StringValue returns the JSON string raw decoded; false if raw is absent or
// not a string. Strings without escapes, the usual case, are sliced rather
// than decoded. raw must be valid JSON (a value from ObjectMembers).
func StringValue(raw json.RawMessage) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanValue returns the end of the JSON value that starts at b[i], inside
// outer enclosing containers. Nesting is followed with a stack of container
// kinds, not recursion, so hostile depth costs no goroutine stack.
func scanValue(b []byte, i, outer int) (int, error) {
	var small [64]byte
	stack := small[:0]
	for {
		// A value starts at i.
		if i >= len(b) {
			return i, syntaxError(b, i, "looking for beginning of value")
		}
		var err error
		switch c := b[i]; {
		case c == '{' || c == '[':
			closer := byte('}')
			if c == '[' {
				closer = ']'
			}
			if outer+len(stack) >= maxMemberDepth {
				return i, fmt.Errorf("protocol: JSON nested deeper than %d", maxMemberDepth)
			}
			i = skipSpace(b, i+1)
			if i < len(b) && b[i] == closer {
				i++
				break
			}
			stack = append(stack, c)
			if c == '{' {
				if i, err = scanKey(b, i); err != nil {
					return i, err
				}
			}
			continue // the first member's value
		case c == '"':
			if i, _, err = scanString(b, i); err != nil {
				return i, err
			}
		case c == 't':
			i, err = scanLiteral(b, i, "true")
		case c == 'f':
			i, err = scanLiteral(b, i, "false")
		case c == 'n':
			i, err = scanLiteral(b, i, "null")
		case c == '-' || (c >= '0' && c <= '9'):
			i, err = scanNumber(b, i)
		default:
			return i, syntaxError(b, i, "looking for beginning of value")
		}
		if err != nil {
			return i, err
		}
		// A value ended at i: close containers until one has a next member.
		for {
			if len(stack) == 0 {
				return i, nil
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return i, syntaxError(b, i, "in unterminated container")
			}
			top := stack[len(stack)-1]
			if b[i] == ',' {
				i = skipSpace(b, i+1)
				if top == '{' {
					if i, err = scanKey(b, i); err != nil {
						return i, err
					}
				}
				break
			}
			if (top == '{' && b[i] == '}') || (top == '[' && b[i] == ']') {
				i++
				stack = stack[:len(stack)-1]
				continue
			}
			return i, syntaxError(b, i, "after container member")
		}
	}
}

// scanKey reads `"key" :` at b[i] and returns where the value starts.
func scanKey(b []byte, i int) (int, error) {
	if i >= len(b) || b[i] != '"' {
		return i, syntaxError(b, i, "looking for beginning of object key string")
	}
	i, _, err := scanString(b, i)
	if err != nil {
		return i, err
	}
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return i, syntaxError(b, i, "after object key")
	}
	return skipSpace(b, i+1), nil
}

// scanString returns the end of the string that starts at b[i] (its opening
// quote) and whether it holds escapes. Control characters must be escaped;
// bytes that are not UTF-8 are left to the decoder, as encoding/json does.
func scanString(b []byte, i int) (end int, escaped bool, err error) {
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1, escaped, nil
		case c < 0x20:
			return i, escaped, syntaxError(b, i, "in string literal")
		case c == '\\':
			escaped = true
			i++
			if i >= len(b) {
				return i, escaped, syntaxError(b, i, "in string escape code")
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return len(b), escaped, syntaxError(b, len(b), "in \\u hexadecimal character escape")
				}
				for _, h := range b[i+1 : i+5] {
					if !isHex(h) {
						return i, escaped, syntaxError(b, i, "in \\u hexadecimal character escape")
					}
				}
				i += 4
			default:
				return i, escaped, syntaxError(b, i, "in string escape code")
			}
		}
	}
	return i, escaped, syntaxError(b, i, "in string literal")
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func scanLiteral(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, syntaxError(b, i, "in literal "+lit)
	}
	return i + len(lit), nil
}

// scanNumber reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func scanNumber(b []byte, i int) (int, error) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = skipDigits(b, i)
	default:
		return i, syntaxError(b, i, "in numeric literal")
	}
	if i < len(b) && b[i] == '.' {
		if i+1 >= len(b) || b[i+1] < '0' || b[i+1] > '9' {
			return i, syntaxError(b, i, "after decimal point in numeric literal")
		}
		i = skipDigits(b, i+1)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return i, syntaxError(b, i, "in exponent of numeric literal")
		}
		i = skipDigits(b, i)
	}
	return i, nil
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

func syntaxError(b []byte, i int, where string) error {
	if i >= len(b) {
		return fmt.Errorf("protocol: invalid JSON: unexpected end of input %s", where)
	}
	return fmt.Errorf("protocol: invalid JSON: invalid character %q at offset %d %s", b[i], i, where)
}

package main

import (
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// stringify re-encodes JSON as JavaScript's JSON.stringify(JSON.parse(raw))
// does, so that data the demo passes on (echo, REST sends) reaches clients
// byte for byte as the original's:
//   - no insignificant whitespace; only the escapes JSON.stringify makes
//     (`<` stays `<`, `\/` becomes `/`, `\b` and `\f` stay short), lone
//     surrogates kept as `\udXXX`;
//   - numbers printed as JavaScript prints doubles (`2.50` → `2.5`, `1e2` →
//     `100`, `1e21` → `1e+21`, overflow → null, underflow → 0);
//   - objects as JavaScript orders them: integer-like keys first, ascending,
//     then the others in order of first appearance; a duplicate key keeps
//     its first position and its last value.
func stringify(raw []byte) ([]byte, error) {
	p := &parser{s: raw}
	p.space()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.s) {
		return nil, errors.New("stringify: data after the JSON value")
	}
	return v.appendTo(make([]byte, 0, len(raw))), nil
}

// maxDepth bounds nesting, so hostile input cannot exhaust the stack.
const maxDepth = 512

// jsValue is a parsed JSON value: a literal already encoded (null, true,
// false, number, string) or an array or object.
type jsValue struct {
	lit   []byte
	array []jsValue
	obj   *jsObject
}

type jsObject struct {
	keys   [][]byte // encoded keys, in JavaScript's property order once sorted
	values map[string]jsValue
}

func (v jsValue) appendTo(b []byte) []byte {
	switch {
	case v.lit != nil:
		return append(b, v.lit...)
	case v.obj != nil:
		b = append(b, '{')
		for i, k := range v.obj.keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, k...)
			b = append(b, ':')
			b = v.obj.values[string(k)].appendTo(b)
		}
		return append(b, '}')
	default:
		b = append(b, '[')
		for i, e := range v.array {
			if i > 0 {
				b = append(b, ',')
			}
			b = e.appendTo(b)
		}
		return append(b, ']')
	}
}

type parser struct {
	s []byte
	i int
}

var errSyntax = errors.New("stringify: invalid JSON")

func (p *parser) space() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) value(depth int) (jsValue, error) {
	if depth > maxDepth {
		return jsValue{}, errors.New("stringify: nested too deeply")
	}
	if p.i >= len(p.s) {
		return jsValue{}, errSyntax
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.arr(depth)
	case c == '"':
		if lit, ok := p.plainString(); ok {
			return jsValue{lit: lit}, nil
		}
		units, err := p.str()
		if err != nil {
			return jsValue{}, err
		}
		return jsValue{lit: appendQuoted(nil, units)}, nil
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	}
	for _, lit := range []string{"null", "true", "false"} {
		if strings.HasPrefix(string(p.s[p.i:min(p.i+5, len(p.s))]), lit) {
			p.i += len(lit)
			return jsValue{lit: []byte(lit)}, nil
		}
	}
	return jsValue{}, errSyntax
}

func (p *parser) arr(depth int) (jsValue, error) {
	p.i++ // [
	out := jsValue{array: []jsValue{}}
	p.space()
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		return out, nil
	}
	for {
		p.space()
		v, err := p.value(depth + 1)
		if err != nil {
			return jsValue{}, err
		}
		out.array = append(out.array, v)
		p.space()
		if p.i >= len(p.s) {
			return jsValue{}, errSyntax
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return out, nil
		default:
			return jsValue{}, errSyntax
		}
	}
}

func (p *parser) object(depth int) (jsValue, error) {
	p.i++ // {
	obj := &jsObject{values: map[string]jsValue{}}
	p.space()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return jsValue{obj: obj}, nil
	}
	var indexKeys []uint32 // integer-like keys, ordered numerically below
	for {
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			return jsValue{}, errSyntax
		}
		units, err := p.str()
		if err != nil {
			return jsValue{}, err
		}
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return jsValue{}, errSyntax
		}
		p.i++
		p.space()
		v, err := p.value(depth + 1)
		if err != nil {
			return jsValue{}, err
		}
		key := appendQuoted(nil, units)
		if _, dup := obj.values[string(key)]; !dup {
			if n, ok := arrayIndex(units); ok {
				indexKeys = append(indexKeys, n)
			} else {
				obj.keys = append(obj.keys, key)
			}
		}
		obj.values[string(key)] = v
		p.space()
		if p.i >= len(p.s) {
			return jsValue{}, errSyntax
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			if len(indexKeys) > 0 {
				slices.Sort(indexKeys)
				keys := make([][]byte, 0, len(indexKeys)+len(obj.keys))
				for _, n := range indexKeys {
					keys = append(keys, strconv.AppendUint([]byte{'"'}, uint64(n), 10))
					keys[len(keys)-1] = append(keys[len(keys)-1], '"')
				}
				obj.keys = append(keys, obj.keys...)
			}
			return jsValue{obj: obj}, nil
		default:
			return jsValue{}, errSyntax
		}
	}
}

// arrayIndex reports whether a key is a canonical array index (0 … 2³²−2),
// which JavaScript orders before the other keys.
func arrayIndex(units []uint16) (uint32, bool) {
	if len(units) == 0 || len(units) > 10 || (units[0] == '0' && len(units) > 1) {
		return 0, false
	}
	var n uint64
	for _, u := range units {
		if u < '0' || u > '9' {
			return 0, false
		}
		n = n*10 + uint64(u-'0')
	}
	if n >= math.MaxUint32 {
		return 0, false
	}
	return uint32(n), true
}

// str reads a JSON string as UTF-16 code units, as JavaScript holds it, so
// that lone surrogates survive.
// plainString reads a string of printable ASCII without escapes, which
// JSON.stringify writes back unchanged: the literal is the input itself,
// quotes included, and nothing is decoded or allocated. Anything else is
// left to str.
func (p *parser) plainString() ([]byte, bool) {
	for i := p.i + 1; i < len(p.s); i++ {
		switch c := p.s[i]; {
		case c == '"':
			lit := p.s[p.i : i+1]
			p.i = i + 1
			return lit, true
		case c < 0x20 || c == '\\' || c >= utf8.RuneSelf:
			return nil, false
		}
	}
	return nil, false
}

func (p *parser) str() ([]uint16, error) {
	p.i++ // "
	var units []uint16
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return units, nil
		case c < 0x20:
			return nil, errSyntax
		case c == '\\':
			if p.i+1 >= len(p.s) {
				return nil, errSyntax
			}
			e := p.s[p.i+1]
			p.i += 2
			switch e {
			case '"', '\\', '/':
				units = append(units, uint16(e))
			case 'b':
				units = append(units, '\b')
			case 'f':
				units = append(units, '\f')
			case 'n':
				units = append(units, '\n')
			case 'r':
				units = append(units, '\r')
			case 't':
				units = append(units, '\t')
			case 'u':
				if p.i+4 > len(p.s) {
					return nil, errSyntax
				}
				n, err := strconv.ParseUint(string(p.s[p.i:p.i+4]), 16, 16)
				if err != nil {
					return nil, errSyntax
				}
				units = append(units, uint16(n))
				p.i += 4
			default:
				return nil, errSyntax
			}
		case c < utf8.RuneSelf:
			units = append(units, uint16(c))
			p.i++
		default:
			r, size := utf8.DecodeRune(p.s[p.i:])
			units = utf16.AppendRune(units, r) // invalid UTF-8 becomes U+FFFD, as a decoder would
			p.i += size
		}
	}
	return nil, errSyntax
}

func (p *parser) number() (jsValue, error) {
	start := p.i
	if p.s[p.i] == '-' {
		p.i++
	}
	digits := func() int {
		n := 0
		for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	intStart := p.i
	if digits() == 0 || (p.s[intStart] == '0' && p.i-intStart > 1) {
		return jsValue{}, errSyntax
	}
	if p.i < len(p.s) && p.s[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return jsValue{}, errSyntax
		}
	}
	if p.i < len(p.s) && (p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		p.i++
		if p.i < len(p.s) && (p.s[p.i] == '+' || p.s[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return jsValue{}, errSyntax
		}
	}
	return jsValue{lit: appendNumber(nil, string(p.s[start:p.i]))}, nil
}

// appendQuoted quotes UTF-16 code units as JSON.stringify does.
func appendQuoted(b []byte, units []uint16) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(units); i++ {
		u := units[i]
		switch {
		case u == '"' || u == '\\':
			b = append(b, '\\', byte(u))
		case u == '\b':
			b = append(b, '\\', 'b')
		case u == '\f':
			b = append(b, '\\', 'f')
		case u == '\n':
			b = append(b, '\\', 'n')
		case u == '\r':
			b = append(b, '\\', 'r')
		case u == '\t':
			b = append(b, '\\', 't')
		case u < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[u>>4], hex[u&0xf])
		case u < utf8.RuneSelf:
			b = append(b, byte(u))
		case utf16.IsSurrogate(rune(u)):
			if u < 0xdc00 && i+1 < len(units) && units[i+1] >= 0xdc00 && units[i+1] <= 0xdfff {
				b = utf8.AppendRune(b, utf16.DecodeRune(rune(u), rune(units[i+1])))
				i++
				continue
			}
			b = append(b, '\\', 'u', hex[u>>12], hex[u>>8&0xf], hex[u>>4&0xf], hex[u&0xf]) // lone
		default:
			b = utf8.AppendRune(b, rune(u))
		}
	}
	return append(b, '"')
}

// appendNumber prints a JSON number as JavaScript prints the double it
// parses to (Number.prototype.toString); ±Infinity becomes null.
func appendNumber(b []byte, num string) []byte {
	f, _ := strconv.ParseFloat(num, 64) // syntax checked; a range error still yields ±Inf or 0
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return append(b, "null"...)
	}
	if f == 0 {
		return append(b, '0') // -0 prints as 0
	}
	if f < 0 {
		b = append(b, '-')
		f = -f
	}
	// Shortest round-trip digits and the decimal exponent: f = 0.d1d2… × 10^n.
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±XX
	mant, expStr, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	exp, _ := strconv.Atoi(expStr)
	k, n := len(digits), exp+1
	switch {
	case k <= n && n <= 21:
		b = append(b, digits...)
		for range n - k {
			b = append(b, '0')
		}
	case 0 < n && n <= 21:
		b = append(b, digits[:n]...)
		b = append(b, '.')
		b = append(b, digits[n:]...)
	case -6 < n && n <= 0:
		b = append(b, '0', '.')
		for range -n {
			b = append(b, '0')
		}
		b = append(b, digits...)
	default:
		b = append(b, digits[0])
		if k > 1 {
			b = append(b, '.')
			b = append(b, digits[1:]...)
		}
		b = append(b, 'e')
		if n-1 >= 0 {
			b = append(b, '+')
		}
		b = strconv.AppendInt(b, int64(n-1), 10)
	}
	return b
}

package protocol

import (
	"encoding/json"
	"unicode/utf8"
)

// AppendMessage appends `{"event":…,"data":…}` to b, data left out when nil:
// byte for byte what the original's JSON.stringify({event, data}) writes for
// data that is already JSON.
func AppendMessage(b []byte, event string, data json.RawMessage) []byte {
	b = append(b, `{"event":`...)
	b = AppendJSONString(b, event)
	if data != nil {
		b = append(b, `,"data":`...)
		b = append(b, data...)
	}
	return append(b, '}')
}

// AppendJSONString appends s quoted as JSON.stringify quotes it: no HTML
// escaping (unlike encoding/json), short escapes for \b \f \n \r \t, and
// invalid UTF-8 as U+FFFD.
func AppendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\b':
				b = append(b, '\\', 'b')
			case c == '\f':
				b = append(b, '\\', 'f')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// AppendEnvelope appends e as JSON, the members in the order and with the
// omissions of its struct tags, strings quoted as JSON.stringify quotes
// them, and data as it is (it is JSON already). It is json.Marshal(e)
// without reflection or re-validating data, for the publish of every
// cross-instance message.
func AppendEnvelope(b []byte, e *Envelope) []byte {
	b = append(b, `{"serverId":`...)
	b = AppendJSONString(b, e.ServerID)
	b = append(b, `,"type":`...)
	b = AppendJSONString(b, string(e.Type))
	if e.Target != "" {
		b = append(b, `,"target":`...)
		b = AppendJSONString(b, e.Target)
	}
	b = append(b, `,"event":`...)
	b = AppendJSONString(b, e.Event)
	if len(e.Data) > 0 {
		b = append(b, `,"data":`...)
		b = append(b, e.Data...)
	}
	if len(e.Exclude) > 0 {
		b = append(b, `,"exclude":[`...)
		for i, id := range e.Exclude {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendJSONString(b, id)
		}
		b = append(b, ']')
	}
	if e.Latest != "" {
		b = append(b, `,"latest":`...)
		b = AppendJSONString(b, e.Latest)
	}
	return append(b, '}')
}

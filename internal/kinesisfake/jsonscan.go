package kinesisfake

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// scanner is a minimal allocation-free JSON reader for the hot request
// shapes. Strings are returned as sub-slices of the input; the rare escaped
// string is unescaped by encoding/json.
type scanner struct {
	b   []byte
	i   int
	err error
}

var errSyntax = errors.New("malformed JSON")

func (s *scanner) fail() {
	if s.err == nil {
		s.err = errSyntax
	}
}

func (s *scanner) peek() byte {
	for s.i < len(s.b) {
		switch c := s.b[s.i]; c {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return c
		}
	}
	return 0
}

func (s *scanner) expect(c byte) bool {
	if s.err != nil {
		return false
	}
	if s.peek() != c {
		s.fail()
		return false
	}
	s.i++
	return true
}

// null consumes a JSON null if one is next.
func (s *scanner) null() bool {
	if s.peek() == 'n' && bytes.HasPrefix(s.b[s.i:], []byte("null")) {
		s.i += 4
		return true
	}
	return false
}

// str reads a string and returns its raw contents and whether they contain
// escapes.
func (s *scanner) str() (raw []byte, esc bool) {
	if !s.expect('"') {
		return nil, false
	}
	start := s.i
	rest := s.b[start:]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		s.fail()
		return nil, false
	}
	if bytes.IndexByte(rest[:j], '\\') < 0 {
		s.i = start + j + 1
		return rest[:j], false
	}
	for k := 0; k < len(rest); k++ {
		switch rest[k] {
		case '\\':
			k++
		case '"':
			s.i = start + k + 1
			return rest[:k], true
		}
	}
	s.fail()
	return nil, false
}

// text reads a string value and returns it unescaped. The result aliases the
// input when there are no escapes.
func (s *scanner) text() []byte {
	raw, esc := s.str()
	if !esc || s.err != nil {
		return raw
	}
	var v string
	q := s.b[s.i-len(raw)-2 : s.i]
	if err := json.Unmarshal(q, &v); err != nil {
		s.fail()
		return nil
	}
	return []byte(v)
}

func (s *scanner) number() []byte {
	s.peek()
	start := s.i
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c >= '0' && c <= '9', c == '-', c == '+', c == '.', c == 'e', c == 'E':
			s.i++
			continue
		}
		break
	}
	if s.i == start {
		s.fail()
	}
	return s.b[start:s.i]
}

func (s *scanner) int() int64 {
	n := s.number()
	v, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		// allow 5.0 style integers
		f, ferr := strconv.ParseFloat(string(n), 64)
		if ferr != nil || f != float64(int64(f)) {
			s.fail()
			return 0
		}
		return int64(f)
	}
	return v
}

func (s *scanner) boolean() bool {
	switch s.peek() {
	case 't':
		if bytes.HasPrefix(s.b[s.i:], []byte("true")) {
			s.i += 4
			return true
		}
	case 'f':
		if bytes.HasPrefix(s.b[s.i:], []byte("false")) {
			s.i += 5
			return false
		}
	}
	s.fail()
	return false
}

// object calls fn for each key; fn must consume the value.
func (s *scanner) object(fn func(key []byte)) {
	if !s.expect('{') {
		return
	}
	if s.peek() == '}' {
		s.i++
		return
	}
	for s.err == nil {
		key, _ := s.str()
		if !s.expect(':') {
			return
		}
		fn(key)
		if s.err != nil {
			return
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return
		default:
			s.fail()
		}
	}
}

// array calls fn for each element; fn must consume it.
func (s *scanner) array(fn func()) {
	if !s.expect('[') {
		return
	}
	if s.peek() == ']' {
		s.i++
		return
	}
	for s.err == nil {
		fn()
		if s.err != nil {
			return
		}
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return
		default:
			s.fail()
		}
	}
}

// skip consumes any value.
func (s *scanner) skip() {
	switch s.peek() {
	case '{':
		s.object(func([]byte) { s.skip() })
	case '[':
		s.array(s.skip)
	case '"':
		s.str()
	case 't', 'f':
		s.boolean()
	case 'n':
		if !s.null() {
			s.fail()
		}
	default:
		s.number()
	}
}

// end checks that only whitespace is left.
func (s *scanner) end() {
	if s.err == nil && s.peek() != 0 {
		s.fail()
	}
}

// appendBytes appends v as a JSON string.
func appendBytes(b []byte, v []byte) []byte {
	return appendString(b, unsafe.String(unsafe.SliceData(v), len(v)))
}

// appendString appends v as a JSON string.
func appendString(b []byte, v string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(v); {
		c := v[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(v[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, v[start:i]...)
				b = append(b, `\ufffd`...)
				i++
				start = i
				continue
			}
			if r == '\u2028' || r == '\u2029' {
				b = append(b, v[start:i]...)
				b = append(b, `\u202`...)
				b = append(b, "89"[r-'\u2028'])
				i += size
				start = i
				continue
			}
			i += size
			continue
		}
		b = append(b, v[start:i]...)
		switch c {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			const hex = "0123456789abcdef"
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, v[start:]...)
	return append(b, '"')
}

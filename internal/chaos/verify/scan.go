package verify

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
)

// A delivery line is decoded by a small hand-written scanner rather than by
// encoding/json: a run produces millions of lines, and reflection-based
// decoding of each costs several times the whole of Check. The scanner
// accepts exactly the JSON grammar for one object; only strings with
// escapes (never produced by the readers in practice) go through
// encoding/json, so their semantics are the standard ones.

// Which required fields a line has set, as bits.
const (
	fieldK = 1 << iota
	fieldN
	fieldShard
	fieldSeq
	fieldT
	fieldW
	allFields = fieldK | fieldN | fieldShard | fieldSeq | fieldT | fieldW
)

// maxDepth bounds the nesting of unknown fields' values, so that a hostile
// line cannot exhaust the stack.
const maxDepth = 64

// interner shares the strings that repeat across lines (keys, shards,
// incarnations): a million deliveries name a few thousand distinct keys.
// Looking a []byte up as string(b) does not allocate.
type interner map[string]string

func newInterner() interner { return make(interner) }

func (in interner) intern(b []byte) string {
	if s, ok := in[string(b)]; ok {
		return s
	}
	s := string(b)
	in[s] = s
	return s
}

type lineScanner struct {
	b []byte
	i int
}

// parseLine decodes one line (without its newline) into d. Fields other than
// the six of a delivery are checked to be JSON and ignored; the six are
// required.
func parseLine(b []byte, in interner, d *Delivery) error {
	s := lineScanner{b: b}
	s.ws()
	if !s.eat('{') {
		return errors.New("not a JSON object")
	}
	seen := 0
	s.ws()
	if !s.eat('}') {
		for {
			s.ws()
			key, _, err := s.strBytes() // aliases the line: no allocation
			if err != nil {
				return fmt.Errorf("field name: %w", err)
			}
			s.ws()
			if !s.eat(':') {
				return fmt.Errorf("field %q: expected ':'", key)
			}
			s.ws()
			switch string(key) {
			case "k":
				d.Key, err = s.str(in)
				seen |= fieldK
			case "n":
				var v int64
				v, err = s.integer()
				if err == nil && int64(int(v)) != v {
					err = errors.New("out of range")
				}
				d.N = int(v)
				seen |= fieldN
			case "shard":
				d.Shard, err = s.str(in)
				seen |= fieldShard
			case "seq":
				// Sequence numbers are unique per record: interning would
				// only grow the table.
				d.Seq, err = s.str(nil)
				seen |= fieldSeq
			case "t":
				d.At, err = s.integer()
				seen |= fieldT
			case "w":
				d.Incarnation, err = s.str(in)
				seen |= fieldW
			default:
				err = s.skip(0)
			}
			if err != nil {
				return fmt.Errorf("field %q: %w", key, err)
			}
			s.ws()
			if s.eat(',') {
				continue
			}
			if s.eat('}') {
				break
			}
			return fmt.Errorf("after field %q: expected ',' or '}'", key)
		}
	}
	s.ws()
	if s.i != len(s.b) {
		return errors.New("data after the JSON object")
	}
	if seen != allFields {
		for _, f := range []struct {
			bit  int
			name string
		}{{fieldK, "k"}, {fieldN, "n"}, {fieldShard, "shard"}, {fieldSeq, "seq"}, {fieldT, "t"}, {fieldW, "w"}} {
			if seen&f.bit == 0 {
				return fmt.Errorf("missing field %q", f.name)
			}
		}
	}
	return nil
}

func (s *lineScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

func (s *lineScanner) eat(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *lineScanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// str reads a JSON string, interned if in is not nil.
func (s *lineScanner) str(in interner) (string, error) {
	b, copied, err := s.strBytes()
	switch {
	case err != nil:
		return "", err
	case copied:
		return string(b), nil
	case in != nil:
		return in.intern(b), nil
	}
	return string(b), nil
}

// strBytes reads a JSON string. Without escapes or invalid UTF-8 its bytes
// are the value, aliasing the line; otherwise encoding/json decodes it
// (which also replaces invalid UTF-8 with U+FFFD) and copied is true.
func (s *lineScanner) strBytes() (v []byte, copied bool, err error) {
	if !s.eat('"') {
		return nil, false, errors.New("expected a string")
	}
	start := s.i
	escaped, ascii := false, true
	for ; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			raw := s.b[start:s.i]
			s.i++
			if escaped || (!ascii && !utf8.Valid(raw)) {
				var v string
				if err := json.Unmarshal(s.b[start-1:s.i], &v); err != nil {
					return nil, false, fmt.Errorf("bad string: %w", err)
				}
				return []byte(v), true, nil
			}
			return raw, false, nil
		case c == '\\':
			escaped = true
			s.i++ // the escaped character, which may be '"'
		case c < 0x20:
			return nil, false, errors.New("control character in string")
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false, errors.New("unterminated string")
}

// integer reads a JSON number that must be an integer in int64 range.
func (s *lineScanner) integer() (int64, error) {
	neg := s.eat('-')
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	digits := s.b[start:s.i]
	switch {
	case len(digits) == 0:
		return 0, errors.New("expected a number")
	case len(digits) > 1 && digits[0] == '0':
		return 0, errors.New("number with a leading zero")
	}
	if c := s.peek(); c == '.' || c == 'e' || c == 'E' {
		return 0, errors.New("not an integer")
	}
	// 19 digits always fit a uint64; more never fit an int64.
	if len(digits) > 19 {
		return 0, errors.New("out of range")
	}
	var u uint64
	for _, c := range digits {
		u = u*10 + uint64(c-'0')
	}
	switch {
	case neg && u <= 1<<63:
		return -int64(u), nil // for u == 1<<63 this wraps to MinInt64, as wanted
	case !neg && u <= math.MaxInt64:
		return int64(u), nil
	}
	return 0, errors.New("out of range")
}

// skip checks and skips any JSON value.
func (s *lineScanner) skip(depth int) error {
	if depth > maxDepth {
		return errors.New("nested too deeply")
	}
	switch c := s.peek(); {
	case c == '"':
		_, _, err := s.strBytes()
		return err
	case c == '{':
		s.i++
		s.ws()
		if s.eat('}') {
			return nil
		}
		for {
			s.ws()
			if _, _, err := s.strBytes(); err != nil {
				return err
			}
			s.ws()
			if !s.eat(':') {
				return errors.New("expected ':'")
			}
			s.ws()
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			s.ws()
			if s.eat(',') {
				continue
			}
			if s.eat('}') {
				return nil
			}
			return errors.New("expected ',' or '}'")
		}
	case c == '[':
		s.i++
		s.ws()
		if s.eat(']') {
			return nil
		}
		for {
			s.ws()
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			s.ws()
			if s.eat(',') {
				continue
			}
			if s.eat(']') {
				return nil
			}
			return errors.New("expected ',' or ']'")
		}
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	}
	return errors.New("expected a JSON value")
}

func (s *lineScanner) literal(lit string) error {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return nil
	}
	return errors.New("invalid literal")
}

// number skips a JSON number of any form.
func (s *lineScanner) number() error {
	s.eat('-')
	switch {
	case s.eat('0'):
	case s.digits() == 0:
		return errors.New("invalid number")
	}
	if s.eat('.') && s.digits() == 0 {
		return errors.New("invalid number")
	}
	if s.eat('e') || s.eat('E') {
		if !s.eat('+') {
			s.eat('-')
		}
		if s.digits() == 0 {
			return errors.New("invalid number")
		}
	}
	return nil
}

func (s *lineScanner) digits() int {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i - start
}

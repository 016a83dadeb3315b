package protocol

import (
	"unicode/utf16"
	"unicode/utf8"
)

// DecodeClientFrame parses and validates one client frame.
//
// It is stricter than encoding/json: the frame must be a single JSON object
// whose keys match exactly (case-sensitive), appear once, are known and
// apply to the op; numbers must be non-negative integers; strings must be
// valid UTF-8. A null value counts as an absent field. Lone UTF-16
// surrogates in \u escapes become U+FFFD, as encoding/json does.
//
// Every error is an *Error: CodeUnknownOp for an op this version does not
// have, CodeBadRequest for everything else. When the frame has a readable
// id and op, the returned frame holds them even on error, so that the error
// reply can echo the id.
func DecodeClientFrame(data []byte) (ClientFrame, error) {
	var (
		f      ClientFrame
		vals   [numFields]span
		seen   fieldSet
		keyErr *Error // first unknown or repeated key
		s      = scanner{data: data}
	)
	s.skipSpace()
	if !s.consume('{') {
		return f, Errorf(CodeBadRequest, "frame is not a JSON object")
	}
	s.skipSpace()
	if !s.consume('}') {
		for {
			s.skipSpace()
			key, err := s.readStringBytes()
			if err != nil {
				return f, err
			}
			// key may alias the scanner's buffer: use it before the value.
			fl, known := lookupField(key)
			switch {
			case !known:
				if keyErr == nil {
					keyErr = Errorf(CodeBadRequest, "unknown field %q", truncate(string(key)))
				}
			case seen&fl.bit() != 0:
				if keyErr == nil {
					keyErr = Errorf(CodeBadRequest, "field %q repeated", fieldNames[fl])
				}
				known = false
			}
			s.skipSpace()
			if !s.consume(':') {
				return f, s.syntaxError("expected ':'")
			}
			s.skipSpace()
			start := s.pos
			if err := s.skipValue(0); err != nil {
				return f, err
			}
			if known {
				seen |= fl.bit()
				if data[start] != 'n' { // null: absent
					vals[fl] = span{start, s.pos}
				}
			}
			s.skipSpace()
			if s.consume('}') {
				break
			}
			if !s.consume(',') {
				return f, s.syntaxError("expected ',' or '}'")
			}
		}
	}
	s.skipSpace()
	if s.pos != len(data) {
		return f, s.syntaxError("data after the object")
	}

	v := valueReader{data: data}
	var err error
	if sp := vals[fieldID]; sp.set() {
		if f.ID, err = v.uint(sp, fieldID); err != nil {
			return f, err
		}
	}
	sp := vals[fieldOp]
	if !sp.set() {
		return f, Errorf(CodeBadRequest, "missing op")
	}
	op, err := v.string(sp, fieldOp)
	if err != nil {
		return f, err
	}
	f.Op = Op(op)
	if err := checkOp(f.Op); err != nil {
		return f, err
	}
	if keyErr != nil {
		return f, keyErr
	}
	allowed := opFields(f.Op) | fieldOp.bit() | fieldID.bit()
	for fl := range numFields {
		if !vals[fl].set() {
			continue
		}
		if allowed&fl.bit() == 0 {
			return f, Errorf(CodeBadRequest, "field %q does not apply to op %q", fieldNames[fl], f.Op)
		}
		sp := vals[fl]
		switch fl {
		case fieldGroup:
			f.Group, err = v.string(sp, fl)
		case fieldRev:
			f.Rev, err = v.uint(sp, fl)
		case fieldEpoch:
			f.Epoch, err = v.string(sp, fl)
		case fieldCountsOnly:
			f.CountsOnly, err = v.bool(sp, fl)
		case fieldStatus:
			var st string
			st, err = v.string(sp, fl)
			f.Status = Status(st)
		case fieldText:
			f.Text, err = v.string(sp, fl)
		case fieldExpiresIn:
			var n uint64
			n, err = v.uint(sp, fl)
			if err == nil && n > MaxExpiresIn {
				err = Errorf(CodeBadRequest, "expires_in out of range 0..%d", MaxExpiresIn)
			}
			f.ExpiresIn = int64(n)
		case fieldUsers:
			f.Users, err = v.strings(sp, fl, MaxQueryUsers)
		case fieldGroups:
			f.Groups, err = v.strings(sp, fl, MaxWatchGroups)
		case fieldToken:
			f.Token, err = v.string(sp, fl)
		}
		if err != nil {
			return f, err
		}
	}
	if err := f.Validate(); err != nil {
		return f, err
	}
	return f, nil
}

// span is the raw text of a value, data[start:end]; end 0 means absent.
type span struct{ start, end int }

func (sp span) set() bool { return sp.end != 0 }

// valueReader converts the raw values the scanner checked into Go values.
type valueReader struct{ data []byte }

func (v valueReader) scanner(sp span) scanner {
	return scanner{data: v.data[:sp.end], pos: sp.start}
}

func typeError(fl clientField, want string) *Error {
	return Errorf(CodeBadRequest, "field %q must be %s", fieldNames[fl], want)
}

func (v valueReader) string(sp span, fl clientField) (string, error) {
	if v.data[sp.start] != '"' {
		return "", typeError(fl, "a string")
	}
	s := v.scanner(sp)
	b, err := s.readStringBytes()
	return string(b), err
}

func (v valueReader) bool(sp span, fl clientField) (bool, error) {
	switch string(v.data[sp.start:sp.end]) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, typeError(fl, "true or false")
}

// uint reads a non-negative integer without fraction or exponent.
func (v valueReader) uint(sp span, fl clientField) (uint64, error) {
	raw := v.data[sp.start:sp.end]
	if len(raw) == 0 || raw[0] < '0' || raw[0] > '9' {
		return 0, typeError(fl, "a non-negative integer")
	}
	var n uint64
	for _, c := range raw {
		if c < '0' || c > '9' {
			return 0, typeError(fl, "a non-negative integer")
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, Errorf(CodeBadRequest, "field %q out of range", fieldNames[fl])
		}
		n = n*10 + d
	}
	return n, nil
}

// strings reads an array of at most max strings.
func (v valueReader) strings(sp span, fl clientField, max int) ([]string, error) {
	if v.data[sp.start] != '[' {
		return nil, typeError(fl, "an array of strings")
	}
	s := v.scanner(sp)
	s.pos++
	s.skipSpace()
	out := []string{}
	if s.consume(']') {
		return out, nil
	}
	for {
		s.skipSpace()
		if s.pos >= len(s.data) || s.data[s.pos] != '"' {
			return nil, typeError(fl, "an array of strings")
		}
		if len(out) == max {
			return nil, Errorf(CodeBadRequest, "field %q holds more than %d entries", fieldNames[fl], max)
		}
		b, err := s.readStringBytes()
		if err != nil {
			return nil, err
		}
		out = append(out, string(b))
		s.skipSpace()
		if s.consume(']') {
			return out, nil
		}
		s.consume(',') // the scanner already checked the syntax
	}
}

// scanner walks JSON text. It checks the syntax of RFC 8259 and reports
// errors as *Error with CodeBadRequest.
type scanner struct {
	data []byte
	pos  int
	buf  []byte // unescaped string, reused
}

// maxDepth bounds nesting in skipped values; client frames nest one level.
const maxDepth = 32

func (s *scanner) syntaxError(msg string) *Error {
	return Errorf(CodeBadRequest, "invalid JSON at offset %d: %s", s.pos, msg)
}

func (s *scanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *scanner) consume(c byte) bool {
	if s.pos < len(s.data) && s.data[s.pos] == c {
		s.pos++
		return true
	}
	return false
}

func (s *scanner) consumeLiteral(lit string) bool {
	if len(s.data)-s.pos >= len(lit) && string(s.data[s.pos:s.pos+len(lit)]) == lit {
		s.pos += len(lit)
		return true
	}
	return false
}

// skipValue checks and skips one JSON value.
func (s *scanner) skipValue(depth int) error {
	if s.pos >= len(s.data) {
		return s.syntaxError("unexpected end")
	}
	switch c := s.data[s.pos]; {
	case c == '"':
		_, err := s.readStringBytes()
		return err
	case c == '{' || c == '[':
		if depth >= maxDepth {
			return s.syntaxError("too deeply nested")
		}
		closing := byte('}')
		if c == '[' {
			closing = ']'
		}
		s.pos++
		s.skipSpace()
		if s.consume(closing) {
			return nil
		}
		for {
			s.skipSpace()
			if c == '{' {
				if _, err := s.readStringBytes(); err != nil {
					return err
				}
				s.skipSpace()
				if !s.consume(':') {
					return s.syntaxError("expected ':'")
				}
				s.skipSpace()
			}
			if err := s.skipValue(depth + 1); err != nil {
				return err
			}
			s.skipSpace()
			if s.consume(closing) {
				return nil
			}
			if !s.consume(',') {
				return s.syntaxError("expected ',' or '" + string(closing) + "'")
			}
		}
	case c == '-' || (c >= '0' && c <= '9'):
		return s.skipNumber()
	case s.consumeLiteral("true"), s.consumeLiteral("false"), s.consumeLiteral("null"):
		return nil
	}
	return s.syntaxError("unexpected character")
}

// skipNumber skips -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) skipNumber() error {
	s.consume('-')
	switch {
	case s.consume('0'):
	case s.digits() == 0:
		return s.syntaxError("invalid number")
	}
	if s.consume('.') && s.digits() == 0 {
		return s.syntaxError("invalid number")
	}
	if s.consume('e') || s.consume('E') {
		if !s.consume('+') {
			s.consume('-')
		}
		if s.digits() == 0 {
			return s.syntaxError("invalid number")
		}
	}
	return nil
}

func (s *scanner) digits() int {
	n := 0
	for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
		s.pos++
		n++
	}
	return n
}

// readStringBytes reads a JSON string at s.pos and returns its unescaped
// content. The result aliases the input or the scanner's buffer: copy it
// before the next call.
func (s *scanner) readStringBytes() ([]byte, error) {
	if !s.consume('"') {
		return nil, s.syntaxError("expected a string")
	}
	start := s.pos
	// Fast path: no escapes, ASCII.
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		if c == '"' {
			s.pos++
			return s.data[start : s.pos-1], nil
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
		s.pos++
	}
	s.buf = append(s.buf[:0], s.data[start:s.pos]...)
	for {
		if s.pos >= len(s.data) {
			return nil, s.syntaxError("unterminated string")
		}
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			return s.buf, nil
		case c < 0x20:
			return nil, s.syntaxError("control character in string")
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(s.data[s.pos:])
			if r == utf8.RuneError && size == 1 {
				return nil, Errorf(CodeBadRequest, "invalid UTF-8 at offset %d", s.pos)
			}
			s.buf = append(s.buf, s.data[s.pos:s.pos+size]...)
			s.pos += size
		case c != '\\':
			s.buf = append(s.buf, c)
			s.pos++
		default:
			s.pos++
			if s.pos >= len(s.data) {
				return nil, s.syntaxError("unterminated string")
			}
			e := s.data[s.pos]
			s.pos++
			switch e {
			case '"', '\\', '/':
				s.buf = append(s.buf, e)
			case 'b':
				s.buf = append(s.buf, '\b')
			case 'f':
				s.buf = append(s.buf, '\f')
			case 'n':
				s.buf = append(s.buf, '\n')
			case 'r':
				s.buf = append(s.buf, '\r')
			case 't':
				s.buf = append(s.buf, '\t')
			case 'u':
				r, ok := s.hex4()
				if !ok {
					return nil, s.syntaxError("invalid \\u escape")
				}
				if utf16.IsSurrogate(r) {
					// A high surrogate followed by a low one is one rune;
					// anything else is a lone surrogate, U+FFFD.
					r2, ok := s.peekLowSurrogate()
					if dec := utf16.DecodeRune(r, r2); ok && dec != utf8.RuneError {
						s.pos += 6
						r = dec
					} else {
						r = utf8.RuneError
					}
				}
				s.buf = utf8.AppendRune(s.buf, r)
			default:
				return nil, s.syntaxError("invalid escape")
			}
		}
	}
}

// hex4 reads the 4 hex digits of a \u escape.
func (s *scanner) hex4() (rune, bool) {
	if len(s.data)-s.pos < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s.data[s.pos : s.pos+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	s.pos += 4
	return r, true
}

// peekLowSurrogate returns the rune of a \uXXXX escape at s.pos without
// consuming it.
func (s *scanner) peekLowSurrogate() (rune, bool) {
	if len(s.data)-s.pos < 6 || s.data[s.pos] != '\\' || s.data[s.pos+1] != 'u' {
		return 0, false
	}
	save := s.pos
	s.pos += 2
	r, ok := s.hex4()
	s.pos = save
	return r, ok
}

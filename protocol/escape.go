package protocol

import "unicode/utf8"

// AppendString appends s as a JSON string, as the frame encoders do, for
// other packages that write JSON by hand (see appendString).
func AppendString(dst []byte, s string) []byte { return appendString(dst, s) }

// appendString appends s as a JSON string. The output is byte for byte what
// encoding/json writes with HTML escaping off: '"' and '\\' escaped, control
// characters as \b \f \n \r \t or \u00XX, U+2028 and U+2029 as \u escapes
// (JavaScript source cannot hold them raw), and each invalid UTF-8 byte as
// \ufffd.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		// Skip runs of bytes that need no escaping, 8 at a time while the
		// word is plain ASCII without '"', '\\' or controls.
		for i+8 <= len(s) && plainWord(s[i:i+8]) {
			i += 8
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if plain[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

const hexDigits = "0123456789abcdef"

// plain marks the ASCII bytes that appear in a JSON string as they are.
var plain = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// plainWord reports whether all 8 bytes of w are plain ASCII.
func plainWord(w string) bool {
	x := uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
		uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	// Bytes >= 0x80, bytes < 0x20, and bytes equal to '"' or '\\' each set
	// the high bit of their lane in bad; carries between lanes only happen
	// after a lane already flagged.
	bad := x & highs
	bad |= (x - ones*0x20) & ^x & highs
	q := x ^ (ones * '"')
	bad |= (q - ones) & ^q & highs
	b := x ^ (ones * '\\')
	bad |= (b - ones) & ^b & highs
	return bad == 0
}

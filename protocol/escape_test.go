package protocol

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

// stdString is what encoding/json writes for s with HTML escaping off.
func stdString(t testing.TB, s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	fixed := []string{
		"", "plain", `"quoted"`, `back\slash`, "\b\f\n\r\t", "\x00\x01\x1f\x7f",
		"<html>&amp;", "\u2028\u2029", "\xff", "a\xffb\xfe", "\xe2\x80", "é日本😀",
		"\xed\xa0\x80", // an encoded surrogate: invalid UTF-8
		"12345678\"2345678", "1234567\\", "abcdefghijklmnopqrstuvwxyz0123456789",
	}
	for _, s := range fixed {
		if got, want := appendString(nil, s), stdString(t, s); !bytes.Equal(got, want) {
			t.Errorf("appendString(%q) = %s, encoding/json: %s", s, got, want)
		}
	}

	// Random strings drawn from an alphabet rich in the bytes that matter.
	alphabet := []string{"a", "Z", "0", " ", "~", "\x7f", "\"", "\\", "/", "<", "&", "\x00", "\x1f", "\n", "\t",
		"é", "日", "😀", "\u2028", "\u2029", "\ufffd", "\xff", "\x80", "\xc3", "\xe2\x80", "\xf0\x9f"}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		var b []byte
		for range r.IntN(40) {
			if r.IntN(3) == 0 {
				b = append(b, byte(r.IntN(256)))
			} else {
				b = append(b, alphabet[r.IntN(len(alphabet))]...)
			}
		}
		s := string(b)
		if got, want := appendString(nil, s), stdString(t, s); !bytes.Equal(got, want) {
			t.Fatalf("appendString(%q) = %s, encoding/json: %s", s, got, want)
		}
		if utf8.ValidString(s) {
			var back string
			if err := json.Unmarshal(appendString(nil, s), &back); err != nil || back != s {
				t.Fatalf("appendString(%q) does not decode back: %q, %v", s, back, err)
			}
		}
	}
}

func TestPlainWord(t *testing.T) {
	isPlain := func(w string) bool {
		for i := 0; i < len(w); i++ {
			c := w[i]
			if c >= utf8.RuneSelf || !plain[c] {
				return false
			}
		}
		return true
	}
	r := rand.New(rand.NewPCG(3, 4))
	special := []byte{0x00, 0x1f, 0x20, 0x21, '"', '#', '\\', ']', '[', 0x7e, 0x7f, 0x80, 0xff}
	for range 200000 {
		var w [8]byte
		for i := range w {
			switch r.IntN(4) {
			case 0:
				w[i] = special[r.IntN(len(special))]
			case 1:
				w[i] = byte(r.IntN(256))
			default:
				w[i] = byte(0x20 + r.IntN(0x60))
			}
		}
		if got, want := plainWord(string(w[:])), isPlain(string(w[:])); got != want {
			t.Fatalf("plainWord(%q) = %v, want %v", w, got, want)
		}
	}
	// Every single byte value in every lane.
	for lane := range 8 {
		for c := range 256 {
			w := []byte("aaaaaaaa")
			w[lane] = byte(c)
			if got, want := plainWord(string(w)), isPlain(string(w)); got != want {
				t.Fatalf("plainWord(%q) = %v, want %v", w, got, want)
			}
		}
	}
}

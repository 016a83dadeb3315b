package wsaccept

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// frame is a client frame: first byte (FIN, opcode), masked, with a
// payload of n bytes.
func frame(first byte, n int) []byte {
	var b bytes.Buffer
	b.WriteByte(first)
	switch {
	case n < 126:
		b.WriteByte(0x80 | byte(n))
	case n <= 0xffff:
		b.WriteByte(0x80 | 126)
		_ = binary.Write(&b, binary.BigEndian, uint16(n))
	default:
		b.WriteByte(0x80 | 127)
		_ = binary.Write(&b, binary.BigEndian, uint64(n))
	}
	b.Write([]byte{1, 2, 3, 4})
	b.Write(bytes.Repeat([]byte{'x'}, n))
	return b.Bytes()
}

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

func TestMessagesEnd(t *testing.T) {
	text := frame(0x81, 20)   // 26 bytes
	mid := frame(0x81, 300)   // 308 bytes
	big := frame(0x81, 70000) // 70,014 bytes
	ping := frame(0x89, 4)    // 10 bytes
	part1 := frame(0x01, 5)   // text, not final: 11 bytes
	part2 := frame(0x00, 5)   // continuation, not final
	part3 := frame(0x80, 5)   // continuation, final
	for _, c := range []struct {
		name string
		b    []byte
		want int64
	}{
		{"nothing", nil, 0},
		{"one byte of a header", text[:1], 0},
		{"a header without all of its mask", text[:5], 26},
		{"a whole message", text, 26},
		{"three messages", cat(text, ping, text), 62},
		{"two messages and part of a third", cat(text, text, text[:10]), 52},
		{"the first message's payload cut", text[:10], 26},
		{"a 126-length header cut", mid[:3], 0},
		{"a 126-length message cut", mid[:100], 308},
		{"a 127-length message cut", big[:100], 70014},
		{"a fragmented message", cat(part1, part2, part3), 33},
		{"a ping between fragments", cat(part1, ping, part3), 32},
		{"a fragmented message cut before its last frame", cat(part1, part2), 0},
		{"a fragmented message cut in its last frame", cat(part1, part2, part3[:3]), 33},
		{"a message, then an unfinished fragmented one", cat(text, part1, ping), 26},
		{"a control frame on its own", ping, 10},
	} {
		if got := MessagesEnd(c.b); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
}

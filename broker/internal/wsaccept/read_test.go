package wsaccept

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
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

// countingReader counts the reads of the connection under a Socket.
type countingReader struct {
	r     io.Reader
	reads int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.reads++
	return c.r.Read(p)
}

// TestReadWithinBudget: within a budget, a reader with a tiny buffer gets
// every byte up to the budget from one read of the connection, then
// ErrWouldBlock, and the round's buffer is given back; the bytes past the
// budget stay for the next round.
func TestReadWithinBudget(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	first, second := cat(frame(0x81, 20), frame(0x89, 4)), frame(0x81, 300)
	go func() { _, _ = a.Write(cat(first, second)) }()
	conn := &countingReader{r: b}
	s := &Socket{r: conn}
	br := bufio.NewReaderSize(s, polledReadSize)
	s.SetBudget(int64(len(first)))
	var got []byte
	for {
		c, err := br.ReadByte()
		if err != nil {
			if !errors.Is(err, ErrWouldBlock) {
				t.Fatal(err)
			}
			break
		}
		got = append(got, c)
	}
	if !bytes.Equal(got, first) || conn.reads != 1 || s.round != nil {
		t.Fatalf("read %d bytes in %d reads (round buffer kept: %v), want the %d of the budget in 1",
			len(got), conn.reads, s.round != nil, len(first))
	}
	// The next round: a payload read straight into a large buffer.
	s.SetBudget(int64(len(second)))
	rest := make([]byte, len(second))
	if _, err := io.ReadFull(br, rest); err != nil || !bytes.Equal(rest, second) {
		t.Fatalf("second round: %v", err)
	}
	if _, err := br.ReadByte(); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("past the second budget: %v", err)
	}
}

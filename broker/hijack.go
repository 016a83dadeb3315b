package broker

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
)

// hijackBufSize is the size of the read and write buffers a WebSocket keeps
// for its life. net/http hands a hijacked connection 4 KiB of each; frames
// of a presence session are small, and larger ones bypass a bufio buffer
// that is empty, so 512 bytes cost syscalls only for bursts of tiny frames.
const hijackBufSize = 512

// smallBuffers gives the hijacked connection of a WebSocket small buffers
// instead of net/http's, which would otherwise live as long as it does, and
// hands the connection to conn.
type smallBuffers struct {
	http.ResponseWriter
	conn *net.Conn
}

func (w smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, http.ErrNotSupported
	}
	c, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Writer.Flush(); err != nil {
		c.Close()
		return nil, nil, err
	}
	*w.conn = c
	var r io.Reader = c
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		r = io.MultiReader(bytes.NewReader(bytes.Clone(b)), c)
	}
	return c, bufio.NewReadWriter(bufio.NewReaderSize(r, hijackBufSize), bufio.NewWriterSize(c, hijackBufSize)), nil
}

// Package strictjson decodes the JSON bodies of the native REST API as
// strictly as the WebSocket protocol decodes its frames: one value, no
// unknown fields, member names matched case-sensitively, no member twice,
// valid UTF-8 only. A body that would mean one thing here and another to a
// lenient reader (a "userId" next to a "UserID", a field given twice) is
// refused instead of guessed at.
package strictjson

import (
	"errors"
	"fmt"
	"io"

	jsonv2 "github.com/go-json-experiment/json"
)

// ErrEmpty is returned for a body with no JSON value.
var ErrEmpty = errors.New("request body is empty")

// Decode reads exactly one JSON value from r into v. Read errors (a body
// over its size limit) are returned as they are, wrapped; a body that is
// not valid JSON, or not strictly v's shape, gives an error that says why.
func Decode(r io.Reader, v any) error {
	cr := &contentReader{r: r}
	err := jsonv2.UnmarshalRead(cr, v, jsonv2.RejectUnknownMembers(true))
	switch {
	case err == nil:
		return nil
	case !cr.content && (errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)):
		return ErrEmpty
	}
	return fmt.Errorf("invalid JSON body: %w", err)
}

// contentReader notes whether anything but whitespace was read.
type contentReader struct {
	r       io.Reader
	content bool
}

func (c *contentReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	for _, b := range p[:n] {
		if b != ' ' && b != '\t' && b != '\r' && b != '\n' {
			c.content = true
			break
		}
	}
	return n, err
}

// Package ddptest is a DDP client for tests of Rocket.Chat's realtime API:
// it sends raw messages and hands back each message it receives, decoded,
// in order, so that a test asserts on the wire as it is.
package ddptest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Timeout bounds every wait of a Client.
var Timeout = 15 * time.Second

// Msg is one decoded DDP message (numbers are float64).
type Msg map[string]any

// Type is the message's "msg".
func (m Msg) Type() string { s, _ := m["msg"].(string); return s }

// Str returns a string field.
func (m Msg) Str(field string) string { s, _ := m[field].(string); return s }

// Map returns an object field.
func (m Msg) Map(field string) Msg { o, _ := m[field].(map[string]any); return o }

// JSON is the message re-encoded, for failure messages and comparisons.
func (m Msg) JSON() string { b, _ := json.Marshal(m); return string(b) }

// Client is one DDP connection of a test. It fails the test on any
// unexpected message or timeout.
type Client struct {
	t        testing.TB
	ws       *websocket.Conn
	autoPong atomic.Bool

	in   chan Msg
	done chan struct{}

	mu sync.Mutex
	// mu guards the following fields.
	backlog  []Msg // read while waiting for something else
	closeErr error
	nextID   int
}

// Dial opens url (ws://host/websocket) and fails the test if it cannot.
func Dial(t testing.TB, url string, header http.Header) *Client {
	t.Helper()
	c, err := TryDial(t, url, header)
	if err != nil {
		t.Fatalf("ddptest: dial %s: %v", url, err)
	}
	return c
}

// TryDial opens url, returning the handshake's error.
func TryDial(t testing.TB, url string, header http.Header) (*Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(1 << 20)
	c := &Client{t: t, ws: ws, in: make(chan Msg, 1024), done: make(chan struct{})}
	c.autoPong.Store(true)
	go c.read()
	t.Cleanup(func() { _ = ws.CloseNow(); <-c.done })
	return c, nil
}

func (c *Client) read() {
	defer close(c.done)
	for {
		_, data, err := c.ws.Read(context.Background())
		if err != nil {
			c.mu.Lock()
			c.closeErr = err
			c.mu.Unlock()
			return
		}
		var m Msg
		if err := json.Unmarshal(data, &m); err != nil {
			m = Msg{"raw": string(data)}
		}
		if c.autoPong.Load() && m.Type() == "ping" {
			pong := Msg{"msg": "pong"}
			if id, ok := m["id"]; ok {
				pong["id"] = id
			}
			c.Send(pong)
			continue
		}
		c.in <- m
	}
}

// AutoPong sets whether the client answers the server's pings without
// showing them (it does by default).
func (c *Client) AutoPong(on bool) { c.autoPong.Store(on) }

// Send writes v as JSON.
func (c *Client) Send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Errorf("ddptest: encode: %v", err)
		return
	}
	c.SendText(string(b))
}

// SendText writes one text frame as it is.
func (c *Client) SendText(s string) {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	_ = c.ws.Write(ctx, websocket.MessageText, []byte(s)) // a closed socket shows in Next
}

// Conn is the WebSocket, for tests of framing and close codes.
func (c *Client) Conn() *websocket.Conn { return c.ws }

// NextWithin returns the next message, or false after d or once closed.
func (c *Client) NextWithin(d time.Duration) (Msg, bool) {
	c.mu.Lock()
	if len(c.backlog) > 0 {
		m := c.backlog[0]
		c.backlog = c.backlog[1:]
		c.mu.Unlock()
		return m, true
	}
	c.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case m := <-c.in:
		return m, true
	case <-c.done:
		select {
		case m := <-c.in:
			return m, true
		default:
		}
		return nil, false
	case <-t.C:
		return nil, false
	}
}

// Next returns the next message.
func (c *Client) Next() Msg {
	c.t.Helper()
	m, ok := c.NextWithin(Timeout)
	if !ok {
		c.t.Fatalf("ddptest: no message within %v (closed: %v)", Timeout, c.Err())
	}
	return m
}

// Expect returns the next message, which must be of type typ.
func (c *Client) Expect(typ string) Msg {
	c.t.Helper()
	m := c.Next()
	if m.Type() != typ {
		c.t.Fatalf("ddptest: got %s, want a %q message", m.JSON(), typ)
	}
	return m
}

// Quiet fails if a message arrives within d.
func (c *Client) Quiet(d time.Duration) {
	c.t.Helper()
	if m, ok := c.NextWithin(d); ok {
		c.t.Fatalf("ddptest: unexpected %s", m.JSON())
	}
}

// Err is why the connection ended, nil while it is open.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeErr
}

// Closed waits for the server to close the connection and returns the
// close code (-1 without a close frame).
func (c *Client) Closed() websocket.StatusCode {
	c.t.Helper()
	deadline := time.After(Timeout)
	for {
		select {
		case <-c.done:
			return websocket.CloseStatus(c.Err())
		case <-c.in:
		case <-deadline:
			c.t.Fatalf("ddptest: the server did not close within %v", Timeout)
		}
	}
}

// Connect reads the server's first message and does the DDP 1 handshake;
// it returns the session id.
func (c *Client) Connect() string {
	c.t.Helper()
	if m := c.Next(); m["server_id"] != "0" {
		c.t.Fatalf("ddptest: first message %s, want {\"server_id\":\"0\"}", m.JSON())
	}
	return c.Handshake()
}

// Handshake sends connect, as @rocket.chat/ddp-client does, and returns
// the session id of connected.
func (c *Client) Handshake() string {
	c.t.Helper()
	c.Send(Msg{"msg": "connect", "version": "1", "support": []string{"1", "pre2", "pre1"}})
	return c.Expect("connected").Str("session")
}

func (c *Client) id() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextID++
	return strconv.Itoa(c.nextID)
}

// Call sends a method and returns its result message and the documents
// (added, removed, nosub) that came before its "updated". Anything else
// read meanwhile is kept for Next.
func (c *Client) Call(method string, params ...any) (res Msg, docs []Msg) {
	c.t.Helper()
	id := c.id()
	if params == nil {
		params = []any{}
	}
	c.Send(Msg{"msg": "method", "id": id, "method": method, "params": params})
	var other []Msg
	defer func() { c.keep(other) }()
	for {
		m := c.Next()
		switch {
		case m.Type() == "result" && m.Str("id") == id:
			res = m
		case m.Type() == "updated" && slices.Contains(m["methods"].([]any), any(id)):
			if res == nil {
				c.t.Fatalf("ddptest: updated before the result of %s", method)
			}
			return res, docs
		case m.Type() == "added" || m.Type() == "removed" || m.Type() == "nosub":
			docs = append(docs, m)
		default:
			other = append(other, m)
		}
	}
}

// Result calls a method that must succeed and returns its result (nil:
// undefined).
func (c *Client) Result(method string, params ...any) any {
	c.t.Helper()
	res, _ := c.Call(method, params...)
	if e, ok := res["error"]; ok {
		c.t.Fatalf("ddptest: %s failed: %v", method, e)
	}
	return res["result"]
}

// Login logs in with a resume token and returns the result.
func (c *Client) Login(token string) Msg {
	c.t.Helper()
	r, _ := c.Result("login", Msg{"resume": token}).(map[string]any)
	return r
}

// Sub subscribes and returns the answer: ready or nosub. Anything else
// read meanwhile is kept for Next.
func (c *Client) Sub(name string, params ...any) Msg {
	c.t.Helper()
	id := c.id()
	if params == nil {
		params = []any{}
	}
	c.Send(Msg{"msg": "sub", "id": id, "name": name, "params": params})
	return c.awaitSub(id)
}

// SubID returns the id of the last Sub.
func (c *Client) SubID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strconv.Itoa(c.nextID)
}

func (c *Client) awaitSub(id string) Msg {
	c.t.Helper()
	var other []Msg
	defer func() { c.keep(other) }()
	for {
		m := c.Next()
		switch {
		case m.Type() == "ready" && slices.Contains(m["subs"].([]any), any(id)):
			return m
		case m.Type() == "nosub" && m.Str("id") == id:
			return m
		default:
			other = append(other, m)
		}
	}
}

// Changed waits for the next changed message of collection and returns
// its fields' args, failing on any other message.
func (c *Client) Changed(collection string) []any {
	c.t.Helper()
	m := c.Expect("changed")
	if m.Str("collection") != collection {
		c.t.Fatalf("ddptest: %s, want a change of %s", m.JSON(), collection)
	}
	args, _ := m.Map("fields")["args"].([]any)
	return args
}

// WaitChanged waits for a changed message of collection whose args, as
// JSON, equal want; it skips others.
func (c *Client) WaitChanged(collection, want string) Msg {
	c.t.Helper()
	var seen []string
	deadline := time.Now().Add(Timeout)
	for time.Now().Before(deadline) {
		m, ok := c.NextWithin(time.Until(deadline))
		if !ok {
			break
		}
		if m.Type() == "changed" && m.Str("collection") == collection {
			got, _ := json.Marshal(m.Map("fields")["args"])
			if string(got) == want {
				return m
			}
		}
		seen = append(seen, m.JSON())
	}
	c.t.Fatalf("ddptest: no change of %s with args %s; saw %v (closed: %v)", collection, want, seen, c.Err())
	return nil
}

func (c *Client) keep(ms []Msg) {
	if len(ms) == 0 {
		return
	}
	c.mu.Lock()
	c.backlog = append(ms, c.backlog...)
	c.mu.Unlock()
}

// ErrorOf returns a result's or nosub's error as JSON, "" if none.
func ErrorOf(m Msg) string {
	e, ok := m["error"]
	if !ok {
		return ""
	}
	b, _ := json.Marshal(e)
	return string(b)
}

// Args formats stream args as JSON, as WaitChanged compares them.
func Args(v ...any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprint(err))
	}
	return string(b)
}

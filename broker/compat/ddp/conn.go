package ddp

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/presenced/presenced/broker/internal/wsaccept"
	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/protocol"
)

// writeTimeout bounds the write of one frame to a client.
const writeTimeout = 10 * time.Second

// maxViolations is how many messages over the rate limit a connection may
// send before it is closed.
const maxViolations = 20

// conn is one DDP connection. Its reader goroutine handles the client's
// messages one at a time, in order, as Meteor does; a writer of the
// handler writes the changes its subscriber queues; the handler's pinger
// pings it when it is silent. Lock order: flushMu, wmu, mu; none is held
// while the membership index is read, and only wmu while the engine is
// called.
type conn struct {
	h       *Handler
	ws      *websocket.Conn
	sock    *wsaccept.Socket // under ws: write deadlines, a frame in one write
	sockjs  bool             // SockJS framing
	limiter *rate.Limiter
	done    chan struct{} // closed once the connection ended and its session closed

	lastRead atomic.Int64 // unix nanoseconds of the last frame read
	pinged   atomic.Bool  // a ping went out since then
	queued   atomic.Bool  // waiting for a writer
	flushMu  sync.Mutex   // held by the writer draining this connection

	// wmu serialises frames. A subscription holds it from its watch until
	// its ready is written, so that no change overtakes the ready.
	wmu sync.Mutex

	mu sync.Mutex
	// mu guards the following fields. Only the reader changes the login
	// and the subscriptions; writers and the handler read them.
	connected  bool                  // the DDP handshake is done
	loggedIn   bool                  // cred is a user's
	cred       membership.Credential // of the login
	sess       *presence.Session     // the user's session while logged in
	sub        *presence.Subscriber  // user watches, made by the first stream
	subs       map[string]*stream    // by DDP sub id
	watched    map[string]int        // user → subscriptions watching them
	listID     string                // sub id of the user list (see streams.go)
	logged     int                   // subscriptions of user-status
	timer      *time.Timer           // the login deadline, then the credential's expiry
	closing    bool
	violations int
}

func (c *conn) run() {
	defer close(c.done)
	defer c.cleanup()
	// coder/websocket does not close the socket when a read fails.
	defer func() { _ = c.ws.CloseNow() }()
	c.armLogin()
	if c.sockjs {
		if c.sendRaw([]byte(sockjsOpen)) != nil {
			return
		}
	}
	if c.send(serverID) != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for {
		typ, data, err := c.ws.Read(ctx)
		if err != nil {
			if websocket.CloseStatus(err) == -1 && errors.Is(err, websocket.ErrMessageTooBig) {
				c.close(protocol.CloseFrameTooBig)
			}
			return
		}
		c.lastRead.Store(c.h.cfg.Now().UnixNano())
		c.pinged.Store(false)
		if c.isClosing() {
			continue // read on until the close handshake ends
		}
		if typ != websocket.MessageText {
			c.close(protocol.CloseProtocolError)
			continue
		}
		msgs := [][]byte{data}
		if c.sockjs {
			msgs = sockjsUnwrap(data)
		}
		for _, m := range msgs {
			if !c.handle(ctx, m) {
				if !c.isClosing() {
					c.drop() // a write failed: the connection is unusable
				}
				break
			}
		}
	}
}

func (c *conn) isConnected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connected
}

func (c *conn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// cleanup ends the connection's session (its grace period starts) and
// subscriptions.
func (c *conn) cleanup() {
	c.mu.Lock()
	c.closing = true
	if c.timer != nil {
		c.timer.Stop()
	}
	sess, sub := c.sess, c.sub
	c.sess = nil
	c.mu.Unlock()
	if sub != nil {
		sub.Close()
	}
	c.endSession(sess)
	c.h.remove(c)
}

func (c *conn) endSession(sess *presence.Session) {
	if sess == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := sess.Close(ctx); err != nil && !errors.Is(err, presence.ErrClosed) {
		c.h.log.Debug("session close", zap.Error(err))
	}
}

// close closes the connection with a protocol.Close* code, once. It does
// not wait.
func (c *conn) close(code int) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing = true
	c.mu.Unlock()
	text := protocol.CloseText(code)
	go func() {
		if c.sockjs {
			_ = c.sendRaw(sockjsClose(code, text))
		}
		_ = c.ws.Close(websocket.StatusCode(code), text)
	}()
}

// drop closes the socket without a close frame.
func (c *conn) drop() {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	_ = c.ws.CloseNow()
}

// send writes DDP messages, in one SockJS frame when SockJS frames them.
func (c *conn) send(msgs ...[]byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.sendLocked(msgs...)
}

// sendLocked is send with wmu held.
func (c *conn) sendLocked(msgs ...[]byte) error {
	if len(msgs) == 0 {
		return nil
	}
	if c.sockjs {
		return c.writeLocked(sockjsMessages(msgs...))
	}
	for _, m := range msgs {
		if err := c.writeLocked(m); err != nil {
			return err
		}
	}
	return nil
}

// sendRaw writes one frame as it is.
func (c *conn) sendRaw(frame []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(frame)
}

func (c *conn) writeLocked(frame []byte) error {
	return c.sock.WriteFrame(c.ws, frame, writeTimeout)
}

// handle answers one DDP message; false ends the connection.
func (c *conn) handle(ctx context.Context, data []byte) bool {
	m, err := decode(data)
	if err != nil {
		return c.send(errorMsg(reasonBadRequest, nil)) == nil
	}
	if m.typ == "" {
		return c.send(errorMsg(reasonBadRequest, m.raw)) == nil
	}
	c.mu.Lock()
	connected := c.connected
	c.mu.Unlock()
	if m.typ == msgConnect {
		if connected {
			return c.send(errorMsg(reasonAlreadyConnected, m.raw)) == nil
		}
		return c.connect(m)
	}
	if !connected {
		return c.send(errorMsg(reasonMustConnect, m.raw)) == nil
	}
	switch m.typ {
	case msgPing:
		id, hasID := m.str("id")
		return c.send(pong(id, hasID)) == nil
	case msgPong:
		return true
	case msgMethod:
		return c.method(ctx, m)
	case msgSub:
		return c.subscribe(m)
	case msgUnsub:
		return c.unsubscribe(m)
	}
	return c.send(errorMsg(reasonBadRequest, m.raw)) == nil
}

// connect answers the handshake: connected when the client proposes
// version 1 and lists it, else failed with the version this server
// speaks, and the socket closes.
func (c *conn) connect(m message) bool {
	version, okVersion := m.str("version")
	support, okSupport := m.strings("support")
	if !okVersion || !okSupport || !slices.Contains(support, version) || version != Version {
		_ = c.send(failed(Version))
		c.close(protocol.CloseNormal)
		return false
	}
	c.mu.Lock()
	c.connected = true
	c.mu.Unlock()
	return c.send(connected(randomID())) == nil
}

// allow counts one method or sub against the rate limit. Past it the
// caller answers with errTooManyRequests; alive is false once the
// connection is closed for it.
func (c *conn) allow() (ok, alive bool) {
	if c.limiter.Allow() {
		return true, true
	}
	c.mu.Lock()
	c.violations++
	v := c.violations
	c.mu.Unlock()
	if v > maxViolations {
		c.close(protocol.CloseRateLimited)
		return false, false
	}
	return false, true
}

// resetMillis is how long a client over the rate limit waits for the next
// call, in milliseconds.
func (c *conn) resetMillis() int64 {
	return int64((1000 + c.h.cfg.OpsPerSecond - 1) / c.h.cfg.OpsPerSecond)
}

// touch records the user's activity: a session turned away for
// inactivity comes back. Pings and pongs are not activity.
func (c *conn) touch() {
	c.mu.Lock()
	sess := c.sess
	c.mu.Unlock()
	if sess != nil {
		sess.Touch()
	}
}

// armLogin closes the connection unless it logs in within LoginTimeout.
func (c *conn) armLogin() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer != nil {
		c.timer.Stop()
	}
	c.timer = time.AfterFunc(c.h.cfg.LoginTimeout, func() {
		c.mu.Lock()
		in := c.loggedIn
		c.mu.Unlock()
		if !in {
			c.close(protocol.CloseUnauthorized)
		}
	})
}

// armExpiry closes the connection when its credential expires.
func (c *conn) armExpiry() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	if c.cred.Expires.IsZero() {
		return
	}
	c.timer = time.AfterFunc(c.cred.Expires.Sub(c.h.cfg.Now()), func() { c.close(protocol.CloseTokenExpired) })
}

// credential returns the credential the connection logged in with.
func (c *conn) credential() (membership.Credential, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cred, c.loggedIn
}

// userID is the logged-in user, "" before login.
func (c *conn) userID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.loggedIn {
		return ""
	}
	return c.cred.UserID
}

// randomID is a Meteor Random.id(): 17 characters that cannot be mistaken
// for one another.
func randomID() string {
	const chars = "23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz"
	var b [17]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = chars[int(b[i])%len(chars)]
	}
	return string(b[:])
}

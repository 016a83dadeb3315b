package protocol

// WebSocket close codes used by presenced. The constants are untyped so they
// convert to any WebSocket library's status type. Codes 4000-4999 are
// private to this protocol; the client reconnects after every code except
// those ClosePermanent reports.
const (
	// CloseNormal: the connection ends on request (client Close, or the
	// server ends a session deliberately).
	CloseNormal = 1000
	// CloseGoingAway: the server is shutting down or restarting; reconnect,
	// possibly to another node, and resume.
	CloseGoingAway = 1001
	// ClosePolicy: the handshake broke a policy, such as an Origin that is
	// not allowed.
	ClosePolicy = 1008
	// CloseFrameTooBig: a client frame exceeded the maximum frame size.
	CloseFrameTooBig = 1009
	// CloseTokenExpired: the token expired and no refresh came in time.
	CloseTokenExpired = 4001
	// CloseUnauthorized: the token was revoked or is not valid.
	CloseUnauthorized = 4002
	// CloseRateLimited: the client kept sending ops faster than allowed.
	CloseRateLimited = 4008
	// CloseSlowConsumer: the client did not read fast enough and its write
	// queue filled up; reconnect and resume.
	CloseSlowConsumer = 4009
	// CloseIdleTimeout: nothing, not even a pong, came from the client for
	// the idle timeout.
	CloseIdleTimeout = 4010
	// CloseProtocolError: the client sent frames that could not be decoded
	// (binary messages, or repeated invalid JSON).
	CloseProtocolError = 4011
	// CloseUnavailable: the node lost its presence store (it cannot reach
	// a quorum, or lost NATS) and would only serve a frozen picture;
	// reconnect with backoff, to another node if there is one, and resume.
	CloseUnavailable = 4012
)

// ClosePermanent reports whether a client must not reconnect with the same
// credentials after the server closed with code: the token is expired or
// invalid, or the connection is not allowed at all. A client with a way to
// get a fresh token may reconnect after CloseTokenExpired.
func ClosePermanent(code int) bool {
	switch code {
	case CloseTokenExpired, CloseUnauthorized, ClosePolicy:
		return true
	}
	return false
}

// CloseText is a short description of code, fit as a close reason.
func CloseText(code int) string {
	switch code {
	case CloseNormal:
		return "normal closure"
	case CloseGoingAway:
		return "going away"
	case ClosePolicy:
		return "policy violation"
	case CloseFrameTooBig:
		return "frame too big"
	case CloseTokenExpired:
		return "token expired"
	case CloseUnauthorized:
		return "unauthorized"
	case CloseRateLimited:
		return "rate limited"
	case CloseSlowConsumer:
		return "slow consumer"
	case CloseIdleTimeout:
		return "idle timeout"
	case CloseProtocolError:
		return "protocol error"
	case CloseUnavailable:
		return "presence unavailable on this node"
	}
	return ""
}

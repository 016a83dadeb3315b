package protocol

import "time"

// Limits of the wire format. The Max values are fixed by this version: a
// frame that exceeds them is a bad_request. The Default values are what a
// server applies unless configured otherwise; README.md explains each.
const (
	// MaxIDLen is the longest group or user id (see ValidID).
	MaxIDLen = 64
	// MaxQueryUsers is the most users one query may ask for.
	MaxQueryUsers = 1000
	// MaxWatchGroups is the most groups one watch_counts may list.
	MaxWatchGroups = 1000
	// MaxTokenLen is the longest token a refresh frame may carry, in bytes.
	MaxTokenLen = 8 << 10
	// MaxExpiresIn is the longest expires_in of set_status, in seconds
	// (366 days).
	MaxExpiresIn = 366 * 24 * 60 * 60

	// DefaultMaxFrameSize is the largest client frame a server reads, in
	// bytes. Server frames (snapshots of big groups) may be larger.
	DefaultMaxFrameSize = 64 << 10
	// DefaultMaxSubscriptions is the most groups one connection may
	// subscribe to.
	DefaultMaxSubscriptions = 1000
	// DefaultOpsPerSecond is the sustained rate of client frames one
	// connection may send.
	DefaultOpsPerSecond = 50
	// DefaultOpsBurst is the size of the per-connection token bucket behind
	// DefaultOpsPerSecond. A new connection starts with a full bucket, large
	// enough to restore DefaultMaxSubscriptions subscriptions and a counts
	// watch at once after a reconnect.
	DefaultOpsBurst = DefaultMaxSubscriptions + 100
	// DefaultWriteQueue is the number of frames a server queues for one
	// connection before it closes it as a slow consumer (CloseSlowConsumer).
	DefaultWriteQueue = 256
)

// Default timing of a connection.
const (
	// DefaultPingInterval is how often the server sends a WebSocket ping.
	DefaultPingInterval = 30 * time.Second
	// DefaultIdleTimeout is how long the server waits without receiving
	// anything (a frame or a pong) before it closes with CloseIdleTimeout.
	DefaultIdleTimeout = 75 * time.Second
)

// ValidID reports whether id is a valid group or user id: 1 to MaxIDLen
// bytes of A-Z, a-z, 0-9, '_' and '-' (^[A-Za-z0-9_-]{1,64}$).
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > MaxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !idChar[id[i]] {
			return false
		}
	}
	return true
}

var idChar = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	t['_'], t['-'] = true, true
	return t
}()

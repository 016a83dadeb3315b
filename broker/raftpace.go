package broker

import (
	"time"
	_ "unsafe" // go:linkname, see below

	_ "github.com/nats-io/nats-server/v2/server" // defines what the names below link to
)

// The pace of the embedded nats-server's raft groups.
//
// A replicated stream takes no write while it has no leader. When the
// server leading the presence stream dies, the other nodes can delete its
// lease, and its users go offline, only once the stream's followers have
// elected a new leader. A follower campaigns when it has heard nothing from
// its leader for a random election timeout, 4 to 9 s in NATS's defaults,
// which are sized for clusters spread over data centres and give no option
// to change them. The first of the two followers' timers decides, and a
// campaign that fails waits out another timeout: a killed leader's users
// went offline after 4.1 to 8.5 s, and once after 12.8 s, where the
// promise is 10 s.
//
// A presenced cluster sits on one network, so its embedded servers run
// their raft groups at twice NATS's pace: a leader's heartbeat every
// 500 ms, and an election after 2 to 4.5 s without one. The ratio of
// timeout to heartbeat stays NATS's own (a follower campaigns after four
// missed heartbeats at the least), and so does the rest of raft: only the
// clock is faster. The values are set before any server starts, and apply
// to every nats-server in this process; an external NATS keeps its own.
const (
	raftHeartbeat          = 500 * time.Millisecond
	raftMinElectionTimeout = 2 * time.Second
	raftMaxElectionTimeout = 4500 * time.Millisecond
)

// nats-server declares these as package variables that only its own tests
// change.
var (
	//go:linkname natsRaftHeartbeat github.com/nats-io/nats-server/v2/server.hbInterval
	natsRaftHeartbeat time.Duration
	//go:linkname natsRaftMinElectionTimeout github.com/nats-io/nats-server/v2/server.minElectionTimeout
	natsRaftMinElectionTimeout time.Duration
	//go:linkname natsRaftMaxElectionTimeout github.com/nats-io/nats-server/v2/server.maxElectionTimeout
	natsRaftMaxElectionTimeout time.Duration
)

func init() {
	natsRaftHeartbeat = raftHeartbeat
	natsRaftMinElectionTimeout = raftMinElectionTimeout
	natsRaftMaxElectionTimeout = raftMaxElectionTimeout
}

package main

// The parent and its worker processes talk in JSON lines: the parent
// writes a command on the worker's stdin, the worker answers each command
// with exactly one reply on its stdout. Times are unix nanoseconds of the
// wall clock, which parent and workers share (one machine).

// Commands.
const (
	cmdConnect   = "connect"   // open and subscribe connections
	cmdSubscribe = "subscribe" // after a split connect: subscribe every connection at once
	cmdSchedule  = "schedule"  // the timetable of status changes to look for
	cmdCollect   = "collect"   // report delivery counters
	cmdReconnect = "reconnect" // drop every connection at once and reconnect
	cmdVerify    = "verify"    // compare the last change seen per user with the final state
	cmdConverge  = "converge"  // wait until every subscriber sees its whole group present
	cmdClose     = "close"     // close every connection and exit
)

// command is one line from parent to worker; Cmd says which field applies.
type command struct {
	Cmd       string            `json:"cmd"`
	Connect   *connectCommand   `json:"connect,omitempty"`
	Subscribe *subscribeCommand `json:"subscribe,omitempty"`
	Schedule  *schedule         `json:"schedule,omitempty"`
	Reconnect *reconnectCommand `json:"reconnect,omitempty"`
	Verify    map[string]int    `json:"verify,omitempty"` // user → seq of their current text
	Converge  *convergeCommand  `json:"converge,omitempty"`
	// PerSeq asks collect for the deliveries of every change.
	PerSeq bool `json:"perSeq,omitempty"`
}

// connectCommand asks a worker for connections First .. First+Count-1 of
// the topology.
type connectCommand struct {
	URL string `json:"url"`
	// URLs, when given, are the nodes of a cluster: connection i dials
	// URLs[i mod len(URLs)] instead of URL.
	URLs     []string `json:"urls,omitempty"`
	Secret   string   `json:"secret"`
	Expires  int64    `json:"expires"` // unix seconds, the tokens' exp
	Topology Topology `json:"topology"`
	First    int      `json:"first"`
	Count    int      `json:"count"`
	// Sources are the loopback addresses to dial from, PerSource
	// connections each.
	Sources   []string `json:"sources"`
	PerSource int      `json:"perSource"`
	// Parallel bounds handshakes in flight.
	Parallel int `json:"parallel"`
	// At is when to start dialling; times are measured from it.
	At int64 `json:"at"`
	// TimeoutMs bounds the whole phase.
	TimeoutMs int64 `json:"timeoutMs"`
	// Track keeps the last change seen per user on every connection, for
	// verify.
	Track bool `json:"track"`
	// Split connects every connection first and subscribes only on the
	// subscribe command, so that the users coming online cause no deltas
	// and the subscribe phase is timed on its own.
	Split bool `json:"split"`
	// Converge keeps, on every subscribing connection, the members of its
	// group it sees present, and when it first saw all of them (see
	// convergeState).
	Converge bool `json:"converge"`
}

// url is the base URL connection i dials.
func (cc *connectCommand) url(i int) string {
	if n := len(cc.URLs); n > 0 {
		return cc.URLs[i%n]
	}
	return cc.URL
}

// subscribeCommand starts the subscribe phase of a split connect at At.
type subscribeCommand struct {
	At        int64 `json:"at"`
	TimeoutMs int64 `json:"timeoutMs"`
}

// connectReply is the outcome of connect or reconnect.
type connectReply struct {
	Connected  int            `json:"connected"`
	Subscribed int            `json:"subscribed"`
	Resumed    int            `json:"resumed"` // reconnect: answered with resumed rather than a snapshot
	Failed     int            `json:"failed"`
	Errors     map[string]int `json:"errors,omitempty"`
	// Hello is from At to hello, per connection; Ready from At to the
	// reply to subscribe (hello for connections that do not subscribe).
	Hello *Histogram `json:"hello"`
	Ready *Histogram `json:"ready"`
	// Handshake is from dialling to hello; Subscribe from sending
	// subscribe to its reply.
	Handshake *Histogram `json:"handshake"`
	Subscribe *Histogram `json:"subscribe"`
	// SnapshotBytes is the size of the biggest snapshot received.
	SnapshotBytes int `json:"snapshotBytes"`
}

// schedule is the timetable of status changes: change seq is due at
// T0 + seq·Interval and carries markerText(seq).
type schedule struct {
	T0       int64   `json:"t0"`
	Interval float64 `json:"interval"` // nanoseconds
	Count    int     `json:"count"`
}

func (s *schedule) due(seq int) int64 { return s.T0 + int64(float64(seq)*s.Interval) }

// reconnectCommand drops every connection at At and reconnects from new
// source addresses, resuming each group from its last revision when
// Resume.
type reconnectCommand struct {
	At        int64    `json:"at"`
	Sources   []string `json:"sources"`
	PerSource int      `json:"perSource"`
	Parallel  int      `json:"parallel"`
	Resume    bool     `json:"resume"`
	TimeoutMs int64    `json:"timeoutMs"`
	// JitterMs spreads the redials: each connection waits a random time
	// below it after the drop, as clients with backoff do.
	JitterMs int64 `json:"jitterMs"`
}

// deliveryReply reports what subscribers received since connect.
type deliveryReply struct {
	// Deliveries counts changes carrying a marker of the schedule, one per
	// subscriber that received it; Latency is from each change's due time
	// to its arrival.
	Deliveries uint64     `json:"deliveries"`
	Latency    *Histogram `json:"latency"`
	// NodeLatency is Latency by the node the subscriber dialled (URLs).
	NodeLatency []*Histogram `json:"nodeLatency,omitempty"`
	// Frames counts delta frames; Changes every change in them.
	Frames  uint64 `json:"frames"`
	Changes uint64 `json:"changes"`
	// Stray counts markers outside the schedule.
	Stray uint64 `json:"stray"`
	// LastDelivery is when the last marker arrived (unix ns).
	LastDelivery int64 `json:"lastDelivery"`
	// Open is how many connections are open; Closed how many the server
	// closed, by close code.
	Open   int            `json:"open"`
	Closed map[string]int `json:"closed,omitempty"`
	// Ended counts subscriptions the server ended with an error push.
	Ended int `json:"ended"`
	// PerSeq, when asked for, holds the deliveries of each change: one
	// little-endian uint32 per seq.
	PerSeq []byte `json:"perSeq,omitempty"`
}

// verifyReply counts, over every tracking subscription and every user of
// its group in the final state, the pairs whose last change seen matches.
type verifyReply struct {
	Match int `json:"match"`
	Total int `json:"total"`
}

// convergeCommand asks a worker that connected with Converge to wait until
// each of its subscribing connections has converged or ended, or until
// Deadline (unix ns), and to report their convergence times.
type convergeCommand struct {
	Deadline int64 `json:"deadline"`
}

// convergeReply is the convergence of a worker's subscribing connections.
type convergeReply struct {
	// Tracked counts the subscribing connections; Converged those that saw
	// every member of their group present by the deadline, NotConverged
	// the others (failed and closed connections among them).
	Tracked      int `json:"tracked"`
	Converged    int `json:"converged"`
	NotConverged int `json:"notConverged"`
	// Ended counts those of NotConverged whose connection failed or ended
	// (the others were open and still short of members).
	Ended int `json:"ended"`
	// Times is from the connect command's At to each convergence.
	Times *Histogram `json:"times"`
	// FewestSeen is the fewest members present that an open connection
	// that did not converge saw at the deadline (0 when there is none).
	FewestSeen int `json:"fewestSeen"`
}

// reply is one line from worker to parent.
type reply struct {
	Err      string         `json:"err,omitempty"`
	PID      int            `json:"pid,omitempty"`
	Connect  *connectReply  `json:"connect,omitempty"`
	Delivery *deliveryReply `json:"delivery,omitempty"`
	Verify   *verifyReply   `json:"verify,omitempty"`
	Converge *convergeReply `json:"converge,omitempty"`
}

package protocol

// Member is one user's presence as frames carry it: in snapshots (members),
// in deltas and resumed frames (changes) and in statuses (users).
//
// The json tags match the wire, so encoding/json reads frames correctly; the
// Append functions write the same shape without reflection.
type Member struct {
	User   string `json:"user"`
	Status Status `json:"status"`
	// Text is the status message, "" for none.
	Text string `json:"text"`
	// Since is when the user got this status, in unix milliseconds.
	Since int64 `json:"since"`
	// LastSeen is when an offline user was last present, in unix
	// milliseconds; 0 when unknown or when the user is present.
	LastSeen int64 `json:"last_seen,omitempty"`
	// Rev is the revision of the change that produced this state; 0 when the
	// frame does not say.
	Rev uint64 `json:"rev,omitempty"`
	// Removed is set on a change when the user left the group (or the group
	// was deleted); the client forgets the member.
	Removed bool `json:"removed,omitempty"`
}

// GroupCount is the online and total member counts of one group at a
// revision.
type GroupCount struct {
	Group  string `json:"group"`
	Online int    `json:"online"`
	Total  int    `json:"total"`
	Rev    uint64 `json:"rev"`
}

// Hello is the content of the hello frame, the first frame of a connection.
// Its "v" field is always Version.
type Hello struct {
	// Session identifies this connection's presence session.
	Session string
	// User is the authenticated user.
	User string
	// Node is the broker node that holds the connection.
	Node string
	// Expires is when the token expires, in unix seconds; 0 for never. The
	// client should refresh before then.
	Expires int64
}

// SnapshotHeader is the snapshot frame minus its members.
type SnapshotHeader struct {
	// ID echoes the subscribe request.
	ID    uint64
	Group string
	// Rev is the revision the snapshot is consistent with. Deltas that follow
	// carry higher revisions.
	Rev uint64
	// Epoch names the revision space; a resume needs the same epoch.
	Epoch string
	// Fresh is true when the subscribe asked to resume and the server could
	// not honour it: the client replaces its state with this snapshot.
	Fresh  bool
	Online int
	Total  int
}

// Delta is a push of changes of one subscribed group.
type Delta struct {
	Group string
	// Rev is the highest revision among Changes.
	Rev     uint64
	Online  int
	Total   int
	Changes []Member
}

// Resumed answers a subscribe that asked to resume: the changes the client
// missed since its revision, in revision order.
type Resumed struct {
	ID      uint64
	Group   string
	Rev     uint64
	Epoch   string
	Online  int
	Total   int
	Changes []Member
}

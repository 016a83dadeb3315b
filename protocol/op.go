package protocol

// Op names a frame: the value of its "op" field.
type Op string

// Frame ops. Client frames are requests and carry an "id" chosen by the
// client; every reply echoes it. Server frames without an id are pushes.
const (
	// Client → server.

	// OpSubscribe starts watching a group: members and their statuses
	// (snapshot, then deltas), or only its counts with counts_only. With rev
	// and epoch it resumes a subscription from that revision. Reply:
	// snapshot, resumed, or counts (counts_only).
	OpSubscribe Op = "subscribe"
	// OpUnsubscribe stops watching a group. Reply: ok.
	OpUnsubscribe Op = "unsubscribe"
	// OpSetStatus sets the caller's manual status and status text. Reply: ok.
	OpSetStatus Op = "set_status"
	// OpQuery asks for the current status of up to MaxQueryUsers users.
	// Reply: statuses.
	OpQuery Op = "query"
	// OpWatchCounts starts (or replaces) a watch of online/total counts of
	// the listed groups, or of every group the caller may see. Reply: counts.
	OpWatchCounts Op = "watch_counts"
	// OpUnwatchCounts ends the counts watch. Reply: ok.
	OpUnwatchCounts Op = "unwatch_counts"
	// OpPing asks for a pong; it also keeps an idle connection alive.
	OpPing Op = "ping"
	// OpRefresh replaces the connection's token before it expires. Reply: ok.
	OpRefresh Op = "refresh"

	// Server → client.

	// OpHello is the first frame of every connection.
	OpHello Op = "hello"
	// OpSnapshot is the full state of a group at a revision.
	OpSnapshot Op = "snapshot"
	// OpResumed answers a resume with exactly the changes the client missed.
	OpResumed Op = "resumed"
	// OpDelta pushes changes of a subscribed group.
	OpDelta Op = "delta"
	// OpCounts carries online/total counts of groups: the reply to
	// watch_counts or to a counts_only subscribe (with id), or a push.
	OpCounts Op = "counts"
	// OpStatuses answers query.
	OpStatuses Op = "statuses"
	// OpOK acknowledges unsubscribe, set_status, refresh and unwatch_counts.
	OpOK Op = "ok"
	// OpPong answers ping.
	OpPong Op = "pong"
	// OpError reports a failed request (with its id) or the end of a
	// subscription (with its group).
	OpError Op = "error"
)

// ClientOp reports whether op is a client → server op.
func (op Op) ClientOp() bool {
	switch op {
	case OpSubscribe, OpUnsubscribe, OpSetStatus, OpQuery, OpWatchCounts,
		OpUnwatchCounts, OpPing, OpRefresh:
		return true
	}
	return false
}

// ServerOp reports whether op is a server → client op.
func (op Op) ServerOp() bool {
	switch op {
	case OpHello, OpSnapshot, OpResumed, OpDelta, OpCounts, OpStatuses,
		OpOK, OpPong, OpError:
		return true
	}
	return false
}

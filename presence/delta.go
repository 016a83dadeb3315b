package presence

import (
	"time"

	"github.com/presenced/presenced/protocol"
)

// Delta is one change of one member as a group's subscribers see it.
type Delta struct {
	User   string
	Status protocol.Status
	Text   string
	// Since is when the status began (zero when offline or removed).
	Since time.Time
	// Rev is the KV revision of the event that caused the change. It is the
	// same on every node.
	Rev uint64
	// Removed means the user left the group; Status is then offline.
	Removed bool
}

// Batch is what a subscriber receives for one group: the changes of one
// coalescing window, at most one per user (the last), oldest first, with the
// group's counts after them. A counts batch (CountsOnly) carries no
// Changes.
//
// Batches are shared between every subscriber of a group: receivers must
// treat Changes as read-only.
type Batch struct {
	Group string
	// Rev is the revision the group is consistent with after this batch.
	Rev           uint64
	Online, Total int
	Changes       []Delta
	CountsOnly    bool
	// Users, in a batch of a user watch (Group empty), is the change of a
	// watched user's status or text.
	Users []Change
	// Reset, when set, replaces what the subscriber knows of the group:
	// the presence stream was lost and loaded again under a new epoch, and
	// this is the group's fresh snapshot. Changes is empty.
	Reset *Snapshot
	// Merged marks a batch that joins several windows' batches of the
	// group for one subscriber that fell behind (see Subscriber.Next): its
	// Changes are its own, shared with no one.
	Merged bool
}

// Change is a user's status change as the change feed publishes it on
// SubjectChanges + user.
type Change struct {
	User   string          `json:"user"`
	Status protocol.Status `json:"status"`
	Text   string          `json:"text,omitempty"`
	Since  time.Time       `json:"since,omitzero"`
	Rev    uint64          `json:"rev"`
}

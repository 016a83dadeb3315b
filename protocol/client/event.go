package client

import (
	"strconv"

	"github.com/presenced/presenced/protocol"
)

// EventType says what an Event reports.
type EventType int

// Event types, in the order a connection produces them.
const (
	// EventConnected: a connection is up and its hello arrived (Hello). It
	// comes first, and again after every reconnect.
	EventConnected EventType = iota + 1
	// EventSnapshot: a group's members were replaced by a snapshot: after
	// Subscribe, or after a reconnect whose resume the server could not
	// honour (Fresh). Group, Rev, Epoch, Fresh, Online, Total, Members.
	EventSnapshot
	// EventResumed: a resume after a reconnect succeeded; Changes are
	// exactly the changes missed while disconnected, already applied.
	// Group, Rev, Epoch, Online, Total, Changes.
	EventResumed
	// EventDelta: changes of a subscribed group, already applied. Changes
	// holds only the changes that were new to the client. Group, Rev,
	// Online, Total, Changes.
	EventDelta
	// EventCounts: group counts, from a counts watch or a counts-only
	// subscription. Counts.
	EventCounts
	// EventSubscriptionEnded: the server ended the subscription to Group, or
	// refused to restore it after a reconnect. Err is a *protocol.Error.
	EventSubscriptionEnded
	// EventDisconnected: the connection was lost (Err says why). With
	// Options.Reconnect, reconnect attempts follow.
	EventDisconnected
	// EventClosed: the client stopped, for good: Close was called (Err nil)
	// or the connection ended and cannot be reestablished (Err). It is the
	// last event.
	EventClosed
)

var eventNames = map[EventType]string{
	EventConnected:         "connected",
	EventSnapshot:          "snapshot",
	EventResumed:           "resumed",
	EventDelta:             "delta",
	EventCounts:            "counts",
	EventSubscriptionEnded: "subscription_ended",
	EventDisconnected:      "disconnected",
	EventClosed:            "closed",
}

func (t EventType) String() string {
	if s, ok := eventNames[t]; ok {
		return s
	}
	return "EventType(" + strconv.Itoa(int(t)) + ")"
}

// Event is something that happened to the client. Type says which fields
// are set. Slices belong to the receiver.
type Event struct {
	Type EventType

	Hello protocol.Hello

	Group   string
	Rev     uint64
	Epoch   string
	Fresh   bool
	Online  int
	Total   int
	Members []protocol.Member
	Changes []protocol.Member

	Counts []protocol.GroupCount

	Err error
}

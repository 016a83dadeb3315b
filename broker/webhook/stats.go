package webhook

import "time"

// EndpointStats are one webhook's delivery counters on one node. Counts
// are of changes unless named otherwise. Only the node delivering the
// webhook has changes queued or in flight; the counters of the others say
// what they delivered before another node took over.
type EndpointStats struct {
	// Queued counts the changes not delivered yet, as the delivering node
	// last saw its consumer: in the stream, or taken and waiting for their
	// batch, or in the batch being delivered (InFlight).
	Queued   int `json:"queued"`
	InFlight int `json:"inFlight"`
	// Delivered counts changes in batches answered with a 2xx; Batches
	// counts those batches.
	Delivered uint64 `json:"delivered"`
	Batches   uint64 `json:"batches"`
	// FailedAttempts counts POSTs that failed (transport error, timeout, a
	// status other than 2xx, or a target address not allowed).
	FailedAttempts uint64 `json:"failedAttempts"`
	// Dropped counts changes that aged out of the stream (past its age,
	// size or count bound) before they were delivered. It is counted from
	// gaps in the stream's sequence numbers, which only a webhook without
	// a users filter sees whole: for a filtered webhook it stays 0.
	Dropped         uint64    `json:"dropped"`
	LastError       string    `json:"lastError,omitempty"`
	LastErrorAt     time.Time `json:"lastErrorAt,omitzero"`
	LastDeliveredAt time.Time `json:"lastDeliveredAt,omitzero"`
	// Delivering reports whether this node delivers the webhook now.
	Delivering bool `json:"-"`
}

// add sums o into st; the last error and times are the latest of both.
func (st *EndpointStats) add(o EndpointStats) {
	st.Queued += o.Queued
	st.InFlight += o.InFlight
	st.Delivered += o.Delivered
	st.Batches += o.Batches
	st.FailedAttempts += o.FailedAttempts
	st.Dropped += o.Dropped
	if o.LastErrorAt.After(st.LastErrorAt) {
		st.LastError, st.LastErrorAt = o.LastError, o.LastErrorAt
	}
	if o.LastDeliveredAt.After(st.LastDeliveredAt) {
		st.LastDeliveredAt = o.LastDeliveredAt
	}
	st.Delivering = st.Delivering || o.Delivering
}

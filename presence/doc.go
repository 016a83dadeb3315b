// Package presence is the presence engine of presenced: sessions stored in a
// JetStream KV bucket, status aggregation, the per-group presence index,
// deltas with revisions, grace periods, node leases and the publish path for
// backend status events.
//
// The index (index.go) is derived from the presence bucket's stream: every
// node applies the same entries in the same order, and every status is a
// pure function of the stored entries (aggregate.go), so all nodes agree at
// each revision.
package presence

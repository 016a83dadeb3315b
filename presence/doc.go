// Package presence is the presence engine of presenced: sessions stored in a
// JetStream KV bucket, status aggregation, the per-group presence index,
// deltas with revisions, grace periods, node leases and the publish path for
// backend status events. It knows nothing of HTTP or of any vendor's JSON.
//
// # Entry points
//
//   - New(Config) → Engine.Start(ctx) → Engine.Ready() → Engine.Shutdown(ctx)
//     (tests stop an engine as if its process died with Kill, in
//     export_test.go).
//   - Engine.Connect returns a Session (SetStatus, Touch, Close);
//     Engine.SetManual sets a hand-made status; Engine.Publish stores a
//     backend status event (the REST path; NATS has SubjectPublish).
//   - Queries: Status, Statuses, ChangedSince, WhereNow, Counts, GroupCount,
//     Snapshot, Rev, Epoch, Stats.
//   - Engine.NewSubscriber: one per WebSocket connection; Subscribe,
//     WatchCounts, Next, Close.
//
// # One ordered stream
//
// All presence state lives in one KV bucket (default "presenced_presence",
// memory storage meant, replicas configurable):
//
//	s.<user>.<session>   a session: node, incarnation, status, text, device,
//	                     since, and expires while it lingers after Close
//	b.<user>.<source>    a backend source, which counts as a session;
//	                     expires with its TTL
//	m.<user>             a manual status (busy, away, offline = invisible)
//	                     and text, with an optional expiry
//	n.<node>             a node's lease
//	members.<g>.<u>      group membership (read only here)
//
// The member keys of the membership bucket are sourced into this bucket's
// stream (a stream source with a subject transform, set up idempotently by
// every Start). That is how membership's change feed reaches presence:
// membership changes and presence changes form one stream, in one order,
// the same on every node. Every node watches the bucket and keeps the whole
// index in memory; every status is a pure function of the stored entries
// (see aggregate), so the KV revision of an entry is the revision of every
// delta it causes, identical on every node. Start returns only after the
// initial load and once the source has caught up with the membership bucket,
// so a node that starts late serves the same snapshots as the others. The
// source starts at the membership stream's first message when it has no
// position yet, and a node that sees it behind without progress for
// SourceStall has the presence stream's leader step down so that it is set
// up again (see sourcing.go).
//
// Revisions count within one incarnation of the stream: Epoch (the stream's
// creation time) names it, and a resume from another epoch gets a fresh
// snapshot. Times that every node must agree on (since, last change, last
// seen) are the server times of KV entries, never a node's clock.
//
// # Leases, grace and expiry
//
// A node refreshes its lease every LeaseRefresh (default 2s) to expire at
// now+LeaseTTL (default 6s). A session counts while its node's lease carries
// the session's incarnation or while it lingers, so when a lease is deleted
// every node drops that node's sessions at the same revision: its users go
// offline once, everywhere. Time-based deletions (lingering sessions after
// the grace period, source TTLs, manual expiry, leases) are made by a
// sweeper on every node with a compare-and-set delete: one node wins, and
// the winner of a lease deletion also deletes the dead node's sessions.
// Session.Close keeps the session for Grace (default 5s) so a reconnect in
// time shows no offline/online pair; Shutdown does the same for every open
// session and deletes the lease, so users who reconnect to another node
// during a rolling restart never appear offline. See sweeper.go and lease.go.
//
// # NATS subjects
//
//   - SubjectPublish ("presenced.status.publish"), queue group
//     PublishQueue ("presenced"): backend status events, JSON
//     {"user","status","text","source","ttl"} with ttl in seconds (0: until
//     the source publishes offline, which removes it). The reply is
//     {"ok":true,"rev":N} or {"error":{"code":"bad_request","message":"..."}}
//     (code "unavailable" when the store fails). A JSON array of up to
//     MaxBatch such events is answered by an array of replies in the same
//     order; its writes are pipelined (see PublishBatch).
//   - SubjectChanges + <user> ("presenced.changes.<user>"): every change of
//     a user's status or text as JSON {"user","status","text","since","rev"}.
//     It is published by exactly one node, the leader of the revision that
//     caused it: the live node with the smallest id among the current
//     leases. Core NATS, at most once: changes made while a leader that died
//     abruptly still holds its lease are not published.
//
// # Subscriptions
//
// Deltas of a group are coalesced for Coalesce (default 25ms, last change
// per user wins) into one Batch per group that every subscriber shares:
// receivers must treat a Batch's Changes as read-only. A subscriber's queue
// is bounded; when it overflows the subscriber is cut (ErrSlowConsumer).
// Subscribe returns a snapshot or, given a revision still covered by the
// group's history (History deltas), exactly the missed deltas; either way
// the batches that follow continue it with no gap and no duplicate.
package presence

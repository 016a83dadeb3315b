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
//     Snapshot, Rev, Epoch, Stats; Available says whether this node can
//     serve them (Config.OnAvailability tells when that changes).
//   - Engine.NewSubscriber: one per WebSocket connection; Subscribe,
//     WatchCounts, Next, Close.
//
// # One ordered stream
//
// All presence state lives in one KV bucket (default "presenced_presence",
// file storage, replicas configurable): what someone stated (a backend
// source, a manual status) survives a restart of every server, and
// sessions, kept alongside, count only while their node's lease does:
//
//	s.<user>.<session>   a session: node, incarnation, status, text, device,
//	                     since, and expires while it lingers after its
//	                     node's Shutdown
//	b.<user>.<source>    a backend source, which counts as a session;
//	                     expires with its TTL
//	m.<user>             a manual status (busy, away, offline = invisible)
//	                     and text, with an optional expiry
//	n.<node>             a node's lease
//	members.<g>.<u>      group membership (read only here)
//	epoch                the name of this incarnation of the stream
//	purged               the revision below which delete markers may be gone
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
// Revisions count within one incarnation of the stream: Epoch (the value of
// the key "epoch", created by the first node that finds none) names it, and
// a resume from another epoch gets a fresh snapshot. When the stream is lost
// (a memory stream after every server restarted, an external NATS that lost
// its data) a node notices, creates the bucket and a new epoch, writes its
// lease and sessions again and pushes every subscription a fresh snapshot
// (Batch.Reset); see epoch.go. The bucket is followed by a jskv.Follower,
// which resumes a watch that stalls or ends (its consumer lives on one
// server, which may die). Times that every node must agree on (since, last change, last
// seen) are the server times of KV entries, never a node's clock. Last
// change and last seen are tracked entry by entry, so the bucket keeps the
// values before the last of each key (see keptValues): a node whose watch
// fell behind still applies the values replaced meanwhile.
//
// # Leases, grace and expiry
//
// A node refreshes its lease every LeaseRefresh (default 2s) and publishes a
// heartbeat on core NATS every LeaseRefresh/4. A session counts while its
// node's lease carries the session's incarnation or while it lingers, so
// when a lease is deleted every node drops that node's sessions at the same
// revision: its users go offline once, everywhere. A lease is deleted once
// it is older than its TTL (default 6s) in stream time, which counts only
// while the stream takes writes, or once its node's heartbeats stopped for
// LeaseRefresh·3/2 while its lease missed a refresh: a leader election or a
// partition of the store never makes a live node's users offline, and a
// dead node's go within seconds (see liveness.go). A node that cannot write
// its lease and hears only a minority of the others, or cannot write for
// longer than any election, reports itself unavailable until it can (see
// availability.go). Time-based deletions (sessions that linger after
// their node's Shutdown, source TTLs, manual expiry, leases) are made by a
// sweeper on every node with a compare-and-set delete: one node wins, and
// the winner of a lease deletion also deletes the dead node's sessions.
// Session.Close keeps the session for Grace (default 5s) so a reconnect in
// time shows no offline/online pair: the node holds it unwritten and
// deletes it when the grace is over, and a reconnect of the same device to
// the node takes it over (grace.go). Shutdown writes every session it
// holds, open or in its grace, with the expiry of its grace and deletes the
// lease, so users who reconnect to another node during a rolling restart
// never appear offline. See sweeper.go, grace.go and lease.go.
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
//     abruptly still holds its lease are not published, nor is a change
//     whose value the bucket no longer held when the leader's watch read it
//     (see keptValues: quick changes of one user, faster than a watch that
//     fell behind, may reach the feed as their latest).
//
// # Subscriptions
//
// What a subscriber is promised is the latest state of every member, in
// revision order: deltas of a group are coalesced for Coalesce (default
// 25ms, last change per user wins) into one Batch per group that every
// subscriber shares, and a value the bucket no longer held when a node's
// watch read it (see keptValues) is not seen at all, so intermediate states
// may be merged, never the latest. Receivers must treat
// a Batch's Changes as read-only. A subscriber's queue
// is bounded; when it overflows the subscriber is cut (ErrSlowConsumer).
// Subscribe returns a snapshot or, given a revision of the same epoch, the
// missed changes: exactly the deltas when the group's history (History
// deltas, since this node started) still holds them, else the latest state
// of every member that changed, joined or left since, derived from the
// stream on any node, restarted or not (unless delete markers after that
// revision were purged); either way the batches that follow continue it
// with no gap and no duplicate.
package presence

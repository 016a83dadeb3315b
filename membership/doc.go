// Package membership owns who belongs where: users, groups, members with
// their role in the group, roles, and API tokens.
//
// Everything is stored in one JetStream key-value bucket with file storage
// (see keys.go for the layout). A Store is the only writer: Open binds the
// bucket, loads it into an Index by watching it, and keeps the Index current
// until Close. Every write returns only after JetStream acknowledged it and
// the local Index applied it, so a caller reads its own writes; other nodes
// see it as soon as their watch delivers it.
//
// Entry points:
//   - Open, Store: writes (CreateUser, PutGroup, PutMember, CreateToken,
//     Import, ...) and Authenticate for API tokens.
//   - Index: lock-protected in-memory reads (User, Members, GroupsOf,
//     UsersInRole, ListUsers for cursor pagination, ...).
//   - Store.Subscribe: the change feed, in bucket order.
//
// Users and groups also carry a numeric alias (Seq) assigned once when they
// are created, for vendors that address them by number. The presence engine
// does not use the change feed for group membership: it sources the member
// keys of this bucket into its own stream (see package presence), so that
// membership and session changes share one order on every node.
package membership

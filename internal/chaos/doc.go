// Package chaos is the chaos suite of presenced: it runs real presenced
// processes, each in a network namespace of its own, breaks them from the
// outside (kill -9, SIGTERM, a link cut without closing sockets, a restart of
// the whole cluster or of an external NATS) and measures what clients see.
//
// It owns nothing of the product: it starts the presenced binary (built from
// the module, or given), talks to it only through its REST API, its
// WebSocket protocol (package protocol/client) and the JetStream API of the
// NATS servers, and reads its logs. Nothing binds outside the namespaces it
// creates, and every namespace and process is removed when a scenario ends.
//
// # Entry points
//
//   - NewSuite(ctx, Config) builds the binaries and checks that namespaces
//     can be made (ErrNoNamespaces otherwise); Suite.Run(ctx, Scenario)
//     runs one scenario and returns its Row; Suite.Close.
//   - Scenarios lists the scenarios in the order they run; Table prints
//     rows; Row.Failures lists the goals a scenario missed.
//
// # Running it
//
// The suite needs root (network namespaces) and iproute2, and is skipped
// unless asked for, so that go test ./... stays fast:
//
//	PRESENCED_CHAOS=1 go test -count=1 -timeout 16m -v ./internal/chaos
//	go test -count=1 -timeout 16m -v ./internal/chaos -chaos -chaos.presenced /path/to/presenced
//	go run ./cmd/presence-chaos -run partition
//
// Without namespaces it skips, saying why; with CI set it fails instead.
// PRESENCED_CHAOS_BINARY runs a prebuilt presenced (a baseline),
// PRESENCED_CHAOS_FLAGS adds flags to every node, PRESENCED_CHAOS_DIR keeps
// data and logs in a directory of your choice.
//
// # How a scenario runs
//
// A hub namespace holds a bridge; each host (a presenced node, or a
// nats-server in the external modes) gets a namespace joined to the bridge
// by a veth pair, host i at 10.77.0.i (network.go). The suite reaches a host
// from inside that host's namespace (dial.go), so cutting a host's link in
// the hub leaves the sockets between it and its own clients open: a
// partition, not a crash.
//
// Every scenario starts a fresh cluster (cluster.go, natsservers.go) with
// default leases, creates 99 users in one group plus a few writer users
// (seed.go), connects 33 users to each node (users.go) and one observer per
// node that subscribes to the group and records every change with its
// local time and revision (observer.go). A poller reads the group's REST
// snapshot from every node a few times a second (poller.go) and writers keep
// publishing acknowledged backend statuses (writers.go). Every fault and
// restart is marked on a timeline (timeline.go), so measure.go can tell
// which node was alive and in the majority when an observer saw something.
//
// What a Row reports (report.go): the time until a dead or cut-off node's
// users were offline on every observer of the majority, and whether exactly
// once; false offlines (a user connected to a live majority node seen
// offline by a majority observer); the time until every reachable node
// served identical and correct snapshots; acknowledged writes missing from
// the final state; notes, such as whether a cut-off node answered 503 and
// told its WebSocket clients.
package chaos

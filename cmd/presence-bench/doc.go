// Command presence-bench is the load generator of presenced: it creates
// users and groups through the API, opens WebSocket connections from
// several worker processes and loopback source addresses, subscribes them,
// drives status changes at a fixed open-loop rate and measures what issue 7
// asks for: connect time, delivery latency from each change's due time to
// each subscriber (p50/p90/p99/max, delivered/expected), the server's RSS
// per connection and CPU per delivered change, the snapshot time of the
// largest group, a reconnect storm, cold start, and how long a group whose
// members all come online at once takes to converge. It prints a table and,
// with --json, writes the report as JSON. Every run is bounded in time and
// count and stops by itself.
//
//	presence-bench --scenario fanout1k                # a preset, spawning presenced
//	presence-bench --spawn --groups 10x1000 --rate 50 --duration 10s
//	presence-bench --url http://127.0.0.1:8080 --server-pid 1234 \
//	    --admin-token T --jwt-secret S --groups 1x1000 --rate 20 --duration 5s
//	presence-bench --scenario fanout1k --server-cpus 0 --bench-cpus 1   # pinned
//	presence-bench --scenario join10k --groups 1x3000  # a smaller group
//	presence-bench --spawn --nodes 5 --groups 99x1000,1x500 --split-subscribe --rate 20 --duration 15s
//
// Presets (--scenario): idle19900, fanout1k, fanout10k, ingest100k,
// reconnect, coldstart, join10k; flags given with a preset override it.
//
// How it works:
//
//   - Topology (topology.go): --groups COUNTxSIZE makes disjoint groups of
//     users pb-u0, pb-u1, ...; connection i acts as user i mod users and
//     subscribes to that user's group when the user is among its first
//     --subscribers members. One NDJSON POST /v1/import creates them.
//   - Workers (workers.go, worker.go): the parent re-executes itself as
//     --workers processes (each at most 19,000 connections, under the
//     20,000 open files a process may hold) and talks to them in JSON lines
//     over stdin/stdout (messages.go). Each worker dials from its own
//     loopback source addresses (127.0.0.2, 127.0.0.3, ..., --per-source
//     connections each), signs user JWTs with --jwt-secret, and keeps one
//     goroutine per connection over a bare github.com/coder/websocket
//     connection that scans frames without decoding them (frame.go).
//   - Changes (publish.go): change seq is due at t0 + seq/rate and carries
//     the status text "pb:<seq>"; it is made by POST /v1/presence/status
//     (--publish rest, the default: a backend status event) or by set_status
//     on a WebSocket of the publishing user (--publish ws). Workers know the
//     timetable, so each subscriber computes latency from the due time on
//     arrival and only histograms travel back.
//   - Server figures: with --spawn the tool starts presenced itself (built
//     with go build unless --presenced names a binary) and reads its RSS and
//     CPU from /proc; with --url, pass --server-pid. Go heap and goroutine
//     figures come from /metrics; with --pprof-addr and --profile-dir it
//     saves heap and CPU profiles.
//   - Clusters (setup.go): with --nodes N the tool spawns N nodes at once,
//     joined by their embedded nats-servers' routes on loopback; connection
//     i dials node i mod N; the import, the changes, the metrics and the
//     profiles go through node 0. The report gives each node's RSS before
//     and after connecting and each node's delivery latency, so that the
//     other nodes' figures are those of changes that crossed the cluster;
//     server CPU and RSS are the sums over the nodes.
//   - CPU pinning (cpus.go, affinity_linux.go): --server-cpus LIST and
//     --bench-cpus LIST (Linux list syntax: 0, 0-1, 0,2-3; empty: no
//     pinning) keep the server and the load on CPUs of their own, so that
//     runs compare. The bench pins every thread of its process at the
//     start of the run, before any worker starts (workers and later
//     threads inherit the mask; so does the go build of presenced). A
//     spawned server, and every cold-start restart, is started from a
//     locked thread given the server's mask for the fork only, so the
//     server has it from its first instruction. --server-cpus needs
//     --spawn (pin a --url server with taskset). The report says which
//     CPUs each side had, from Cpus_allowed_list in /proc/<pid>/status,
//     with each side's GOMAXPROCS (the server's from its
//     go_sched_gomaxprocs_threads metric): machine.benchCPUs,
//     benchPinned, benchGomaxprocs and server.serverCPUs, serverPinned,
//     serverGomaxprocs in JSON; notes say when the kernel gave a side
//     other CPUs than asked, or when the two lists overlap.
//   - Fan-out (fanout.go, metrics.go): the connect phase (from before the
//     first connection to the end of --settle: the online change of each
//     joining member fanned out to its group) and the status-change phase
//     (first change to the end of the drain) report, as "fanout" in
//     connect and delivery, the growth of the server's
//     presenced_frames_out_total (framesOut: every frame written, hellos
//     and snapshots too), presenced_deltas_out_total (deltasOut) and
//     presenced_status_changes_total (statusChanges), framesPerChange,
//     and the largest presenced_fanout_window_seconds (windowMaxMs: the
//     coalescing window open at the moment of a scrape, sampled once a
//     second, so a lower bound). A series the server does not export is
//     listed under missing (windowMaxMs is then left out), not an error.
//     /metrics is read with the admin token; a server with a
//     --metrics-token of its own refuses it, and a note says so.
//   - Convergence (converge.go; --converge, implied by --target-converge,
//     and the join10k preset: 10,000 members of one group dialled at once,
//     each subscribing as soon as its hello arrives, not
//     --split-subscribe): every subscribing connection keeps a bit per
//     member of its group, set while the member is present (online, away
//     or busy), from its snapshot and then every delta (offline or
//     removed clears it; changes at or below the revision it has are
//     skipped). It has converged when it sees all the group's members
//     present, every member connecting. After connecting, the workers wait
//     until each subscriber has converged or ended, at most
//     --converge-timeout (default 60s) from the start of dialling, and
//     send back the times. The report's "converge" section gives the time
//     from the start of dialling until the last subscriber converged
//     (allConvergedMs, "converged within", checked against
//     --target-converge), the spread of the connections' times (times:
//     p50/p99/max from the start), how many did not converge in the bound
//     and the fewest members one of them saw present, start → hello and
//     dial → hello (p50/p99: the server writes hello before it fans out
//     the joiner's online change), CPU, the connections the server closed
//     (slow consumers among them), and the fan-out from before the first
//     connection to the end of the convergence. A subscriber left short of
//     members with its connection open means the server lost a delta, or
//     a snapshot missed a member.
//
// Results measured on the project's machine, with the commands that
// reproduce them, are in RESULTS.md.
package main

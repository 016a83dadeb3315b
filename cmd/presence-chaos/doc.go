// Command presence-chaos runs the chaos suite of package internal/chaos by
// hand: real presenced processes in network namespaces, killed, stopped,
// cut off and restarted, with observers on every node. It prints one row
// per scenario (time to offline, false offlines, time to converge,
// acknowledged writes lost, notes) and every missed goal, and exits 1 when
// a scenario missed one. It needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN)
// and iproute2.
//
//	presence-chaos                                 # build ./cmd/presenced, run every scenario
//	presence-chaos -run 'kill|partition'           # the scenarios whose name matches
//	presence-chaos -presenced /tmp/base/presenced  # a prebuilt binary, e.g. a baseline
//	presence-chaos -flags '--cluster-user u --cluster-password p' -dir /tmp/chaos
//
// Run it from inside the module (it builds there). -list prints the
// scenarios.
package main

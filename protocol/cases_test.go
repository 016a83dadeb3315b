package protocol

// Example frames shared by the golden, round-trip and README tests. Every
// op has at least one; variants cover optional fields.

type clientCase struct {
	name  string
	frame ClientFrame
}

var clientCases = []clientCase{
	{"subscribe", ClientFrame{Op: OpSubscribe, ID: 1, Group: "g1"}},
	{"subscribe_resume", ClientFrame{Op: OpSubscribe, ID: 1, Group: "g1", Rev: 123, Epoch: "e"}},
	{"subscribe_counts_only", ClientFrame{Op: OpSubscribe, ID: 1, Group: "g1", CountsOnly: true}},
	{"unsubscribe", ClientFrame{Op: OpUnsubscribe, ID: 2, Group: "g1"}},
	{"set_status", ClientFrame{Op: OpSetStatus, ID: 3, Status: StatusBusy, Text: "In a meeting", ExpiresIn: 3600}},
	{"set_status_text", ClientFrame{Op: OpSetStatus, ID: 3, Text: "Lunch 🍜"}},
	{"set_status_clear", ClientFrame{Op: OpSetStatus, ID: 3, Status: StatusOnline}},
	{"query", ClientFrame{Op: OpQuery, ID: 4, Users: []string{"a", "b"}}},
	{"watch_counts", ClientFrame{Op: OpWatchCounts, ID: 5, Groups: []string{"g1"}}},
	{"watch_counts_all", ClientFrame{Op: OpWatchCounts, ID: 5}},
	{"unwatch_counts", ClientFrame{Op: OpUnwatchCounts, ID: 6}},
	{"ping", ClientFrame{Op: OpPing, ID: 7}},
	{"refresh", ClientFrame{Op: OpRefresh, ID: 8, Token: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1MSJ9.c2ln"}},
}

type serverCase struct {
	name   string
	encode func(dst []byte) []byte
	want   ServerFrame // what DecodeServerFrame returns
}

var (
	u1Online = Member{User: "u1", Status: StatusOnline, Text: "", Since: 1795000000000}
	u2Busy   = Member{User: "u2", Status: StatusBusy, Text: "In a meeting", Since: 1795000100000}
	u3Away   = Member{User: "u3", Status: StatusAway, Since: 1795000200000, Rev: 11}
	u4Off    = Member{User: "u4", Status: StatusOffline, Since: 1795000300000, Rev: 12}
	u5Gone   = Member{User: "u5", Status: StatusOffline, Since: 1795000300000, Rev: 12, Removed: true}
)

var serverCases = []serverCase{
	{
		"hello",
		func(b []byte) []byte {
			return AppendHello(b, Hello{Session: "s1", User: "u1", Node: "n1", Expires: 1795003600})
		},
		ServerFrame{Op: OpHello, V: Version, Session: "s1", User: "u1", Node: "n1", Expires: 1795003600},
	},
	{
		"hello_no_expiry",
		func(b []byte) []byte { return AppendHello(b, Hello{Session: "s1", User: "u1", Node: "n1"}) },
		ServerFrame{Op: OpHello, V: Version, Session: "s1", User: "u1", Node: "n1"},
	},
	{
		"snapshot",
		func(b []byte) []byte {
			return AppendSnapshot(b, SnapshotHeader{ID: 1, Group: "g1", Rev: 10, Epoch: "e", Online: 2, Total: 3},
				[]Member{u1Online, u2Busy})
		},
		ServerFrame{Op: OpSnapshot, ID: 1, Group: "g1", Rev: 10, Epoch: "e", Online: 2, Total: 3,
			Members: []Member{u1Online, u2Busy}},
	},
	{
		"snapshot_pushed",
		func(b []byte) []byte {
			b = AppendSnapshotStart(b, SnapshotHeader{Group: "g1", Rev: 4, Epoch: "e3", Fresh: true, Online: 1, Total: 3})
			b = AppendMember(b, Member{User: "u1", Status: StatusOnline, Since: 1795000400000}, true)
			return AppendSnapshotEnd(b)
		},
		ServerFrame{Op: OpSnapshot, Group: "g1", Rev: 4, Epoch: "e3", Fresh: true, Online: 1, Total: 3,
			Members: []Member{{User: "u1", Status: StatusOnline, Since: 1795000400000}}},
	},
	{
		"snapshot_fresh",
		func(b []byte) []byte {
			b = AppendSnapshotStart(b, SnapshotHeader{ID: 1, Group: "g1", Rev: 20, Epoch: "e2", Fresh: true, Online: 1, Total: 1})
			b = AppendMember(b, u1Online, true)
			return AppendSnapshotEnd(b)
		},
		ServerFrame{Op: OpSnapshot, ID: 1, Group: "g1", Rev: 20, Epoch: "e2", Fresh: true, Online: 1, Total: 1,
			Members: []Member{u1Online}},
	},
	{
		"snapshot_empty",
		func(b []byte) []byte {
			return AppendSnapshot(b, SnapshotHeader{ID: 9, Group: "empty", Rev: 3, Epoch: "e"}, nil)
		},
		ServerFrame{Op: OpSnapshot, ID: 9, Group: "empty", Rev: 3, Epoch: "e", Members: []Member{}},
	},
	{
		"resumed",
		func(b []byte) []byte {
			return AppendResumed(b, Resumed{ID: 1, Group: "g1", Rev: 12, Epoch: "e", Online: 1, Total: 3,
				Changes: []Member{u3Away, u4Off}})
		},
		ServerFrame{Op: OpResumed, ID: 1, Group: "g1", Rev: 12, Epoch: "e", Online: 1, Total: 3,
			Changes: []Member{u3Away, u4Off}},
	},
	{
		"resumed_nothing_missed",
		func(b []byte) []byte {
			return AppendResumed(b, Resumed{ID: 1, Group: "g1", Rev: 12, Epoch: "e", Online: 1, Total: 3})
		},
		ServerFrame{Op: OpResumed, ID: 1, Group: "g1", Rev: 12, Epoch: "e", Online: 1, Total: 3, Changes: []Member{}},
	},
	{
		"delta",
		func(b []byte) []byte {
			return AppendDelta(b, Delta{Group: "g1", Rev: 12, Online: 1, Total: 3, Changes: []Member{u3Away, u4Off}})
		},
		ServerFrame{Op: OpDelta, Group: "g1", Rev: 12, Online: 1, Total: 3, Changes: []Member{u3Away, u4Off}},
	},
	{
		"delta_removed",
		func(b []byte) []byte {
			return AppendDelta(b, Delta{Group: "g1", Rev: 12, Online: 1, Total: 2, Changes: []Member{u5Gone}})
		},
		ServerFrame{Op: OpDelta, Group: "g1", Rev: 12, Online: 1, Total: 2, Changes: []Member{u5Gone}},
	},
	{
		"counts_reply",
		func(b []byte) []byte {
			return AppendCounts(b, 5, []GroupCount{{Group: "g1", Online: 2, Total: 5, Rev: 12}, {Group: "g2", Online: 0, Total: 7, Rev: 4}})
		},
		ServerFrame{Op: OpCounts, ID: 5, Groups: []GroupCount{{Group: "g1", Online: 2, Total: 5, Rev: 12}, {Group: "g2", Online: 0, Total: 7, Rev: 4}}},
	},
	{
		"counts_push",
		func(b []byte) []byte {
			return AppendCounts(b, 0, []GroupCount{{Group: "g1", Online: 3, Total: 5, Rev: 13}})
		},
		ServerFrame{Op: OpCounts, Groups: []GroupCount{{Group: "g1", Online: 3, Total: 5, Rev: 13}}},
	},
	{
		"statuses",
		func(b []byte) []byte {
			return AppendStatuses(b, 4, []Member{
				{User: "a", Status: StatusOnline, Since: 1795000000000},
				{User: "b", Status: StatusOffline, Since: 1794990000000, LastSeen: 1794990000000},
			})
		},
		ServerFrame{Op: OpStatuses, ID: 4, Users: []Member{
			{User: "a", Status: StatusOnline, Since: 1795000000000},
			{User: "b", Status: StatusOffline, Since: 1794990000000, LastSeen: 1794990000000},
		}},
	},
	{
		"ok",
		func(b []byte) []byte { return AppendOK(b, 2) },
		ServerFrame{Op: OpOK, ID: 2},
	},
	{
		"pong",
		func(b []byte) []byte { return AppendPong(b, 7) },
		ServerFrame{Op: OpPong, ID: 7},
	},
	{
		"error",
		func(b []byte) []byte { return AppendError(b, 1, CodeForbidden, "not a member of group \"g1\"") },
		ServerFrame{Op: OpError, ID: 1, Code: CodeForbidden, Message: "not a member of group \"g1\""},
	},
	{
		"error_group",
		func(b []byte) []byte { return AppendGroupError(b, "g1", CodeForbidden, "no longer a member") },
		ServerFrame{Op: OpError, Group: "g1", Code: CodeForbidden, Message: "no longer a member"},
	},
}

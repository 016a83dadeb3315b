package membership_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/presenced/presenced/internal/natstest"
)

// BenchmarkImport100kUsers1MMembers imports 100,000 users, 1,000 groups and
// 1,000,000 memberships (each user in 10 groups of 1,000 members) into a
// fresh store, and reports the process RSS after the import. Run it with
// -benchtime=1x: one import is one operation.
func BenchmarkImport100kUsers1MMembers(b *testing.B) {
	const users, groups, perUser = 100_000, 1_000, 10
	var buf bytes.Buffer
	for g := range groups {
		fmt.Fprintf(&buf, `{"kind":"group","id":"g%d","name":"Group %d"}`+"\n", g, g)
	}
	for u := range users {
		fmt.Fprintf(&buf, `{"kind":"user","id":"u%d","username":"user%d","name":"User %d"}`+"\n", u, u, u)
	}
	for u := range users {
		for k := range perUser {
			fmt.Fprintf(&buf, `{"kind":"member","groupId":"g%d","userId":"u%d"}`+"\n", (u*perUser+k)%groups, u)
		}
	}
	input := buf.Bytes()
	b.SetBytes(int64(len(input)))
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		st := openStore(b, natstest.Start(b))
		b.StartTimer()
		rep, err := st.Import(context.Background(), bytes.NewReader(input), nil)
		if err != nil {
			b.Fatal(err)
		}
		if rep.Created != users+groups+users*perUser || rep.Failed != 0 {
			b.Fatalf("report: %+v", rep)
		}
		b.StopTimer()
		runtime.GC()
		b.ReportMetric(float64(rssBytes())/(1<<20), "rss-MiB")
		_, _, members := st.Index().Counts()
		if members != users*perUser {
			b.Fatalf("index has %d members", members)
		}
		b.StartTimer()
	}
}

// rssBytes reads the resident set size of this process (Linux).
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

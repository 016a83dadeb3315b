package broker_test

import (
	"cmp"
	"fmt"
	"maps"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/broker"
	"github.com/presenced/presenced/protocol"
)

// TestIdleConnectionKeepsNoContext: an idle WebSocket keeps no context of
// its own. Its reader used to derive WaitRev's deadline (and the deadlines
// of its ops) from a context that lived as long as the connection; that
// parent kept, from its first child on, a children map and a Done channel:
// about 400 bytes per idle connection, 4 % of the heap an idle connection
// holds. Those are what context's propagateCancel allocates in a parent
// that can be cancelled; the children themselves (a deadline's timer, which
// a stopped timer may keep a while) are not counted. Every allocation is
// recorded (MemProfileRate 1) and those still in use are read from the
// profile.
func TestIdleConnectionKeepsNoContext(t *testing.T) {
	defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
	runtime.MemProfileRate = 1
	s := startServer(t, "")
	seedTeam(t, s)
	tok := userJWT(t, "a", time.Hour)
	const conns = 20
	for range conns {
		mustDial(t, s, tok)
	}
	// Let the last reader apply its session (WaitRev) and park.
	time.Sleep(200 * time.Millisecond)
	// A free shows in the profile from the collection after the one that
	// swept it.
	for range 3 {
		runtime.GC()
	}
	recs := memProfile()
	var held, objects int64
	for _, r := range recs {
		if r.InUseBytes() == 0 {
			continue
		}
		var inRun, inParent bool
		frames := runtime.CallersFrames(r.Stack())
		for {
			f, more := frames.Next()
			inRun = inRun || strings.HasSuffix(f.Function, "broker.(*wsConn).run")
			inParent = inParent || f.Function == "context.(*cancelCtx).propagateCancel"
			if !more {
				break
			}
		}
		if inRun && inParent {
			held += r.InUseBytes()
			objects += r.InUseObjects()
		}
	}
	if held > 0 {
		t.Fatalf("%d idle connections keep %d bytes in %d objects of a context their reader cancels only at the end",
			conns, held, objects)
	}
}

// BenchmarkIdleConnectionHeap measures the heap an idle subscribed
// WebSocket keeps on the server: 200 connections, each of its own user,
// subscribed to its group of 22 (every member online), after the other
// members' online changes reached them and the server's pinger found them
// silent. Every allocation made while they connect is recorded
// (MemProfileRate 1); what the server's code holds after three
// collections, less what it held before they connected, is divided among
// them. With -v it lists the largest allocation sites.
//
//	go test ./broker -run '^$' -bench IdleConnectionHeap -benchtime 1x -v
func BenchmarkIdleConnectionHeap(b *testing.B) {
	const warm, conns, groups = 20, 200, 10
	// The pinger trims the queues of connections silent for a third of
	// the idle timeout: a second here.
	const idle = 3 * time.Second
	s := startServer(b, "", func(c *broker.Config) { c.Limits.IdleTimeout = idle })
	if a := postImport(b, s, ndjson(importLines(groups+2*(warm+conns))), false); a.status != http.StatusOK {
		b.Fatalf("import: %d %+v", a.status, a.err)
	}
	for g := range groups {
		waitMembers(b, s, fmt.Sprintf("g%d", g), (warm+conns)/groups)
	}
	var clients []*wsClient
	dial := func(u int) {
		c := mustDial(b, s, userJWT(b, fmt.Sprintf("u%d", u), time.Hour))
		if f := c.reply(protocol.ClientFrame{Op: protocol.OpSubscribe, Group: fmt.Sprintf("g%d", u%groups)}); f.Op != protocol.OpSnapshot {
			b.Fatalf("subscribe: %+v", f)
		}
		clients = append(clients, c)
	}
	// quiet reads every client's frames until none came for 300 ms.
	quiet := func() {
		for last := time.Now(); time.Since(last) < 300*time.Millisecond; {
			got := false
			for _, c := range clients {
				select {
				case <-c.frames:
					got = true
				default:
				}
			}
			if got {
				last = time.Now()
			} else {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	for u := range warm {
		dial(u)
	}
	quiet()
	defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
	runtime.MemProfileRate = 1
	before := serverHeap()
	for u := warm; u < warm+conns; u++ {
		dial(u)
	}
	quiet()
	time.Sleep(idle * 2 / 3) // silent for idle/3, and seen so by the pinger
	bySite := serverHeap()
	var held int64
	for site, n := range before {
		bySite[site] -= n
	}
	for _, n := range bySite {
		held += n
	}
	sites := slices.SortedFunc(maps.Keys(bySite), func(a, b string) int { return cmp.Compare(bySite[b], bySite[a]) })
	for _, site := range sites[:min(len(sites), 25)] {
		b.Logf("%6d B per connection  %s", bySite[site]/conns, site)
	}
	b.ReportMetric(float64(held)/conns, "B/conn")
	b.ReportMetric(0, "ns/op")
	for _, c := range clients {
		_ = c.c.CloseNow()
	}
}

// serverHeap returns, after three collections, the bytes in use by
// allocation site (the first function outside the runtime) of what the
// server's code allocated: stacks through this module or a server
// connection's goroutine, and not through the test's clients.
func serverHeap() map[string]int64 {
	for range 3 {
		runtime.GC()
	}
	bySite := map[string]int64{}
	for _, r := range memProfile() {
		if r.InUseBytes() == 0 {
			continue
		}
		server, site := false, ""
		frames := runtime.CallersFrames(r.Stack())
		for {
			f, more := frames.Next()
			if strings.Contains(f.Function, "broker_test.") {
				server = false
				break
			}
			if site == "" && !strings.HasPrefix(f.Function, "runtime.") && !strings.HasPrefix(f.Function, "internal/") {
				site = f.Function
			}
			server = server || strings.HasPrefix(f.Function, "github.com/presenced/presenced/") || f.Function == "net/http.(*conn).serve"
			if !more {
				break
			}
		}
		if server {
			bySite[site] += r.InUseBytes()
		}
	}
	return bySite
}

// memProfile returns the records of the heap profile.
func memProfile() []runtime.MemProfileRecord {
	n, _ := runtime.MemProfile(nil, false)
	for {
		recs := make([]runtime.MemProfileRecord, n+50)
		var ok bool
		if n, ok = runtime.MemProfile(recs, false); ok {
			return recs[:n]
		}
	}
}

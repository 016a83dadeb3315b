package broker_test

import (
	"runtime"
	"strings"
	"testing"
	"time"
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
	var recs []runtime.MemProfileRecord
	n, _ := runtime.MemProfile(nil, false)
	for {
		recs = make([]runtime.MemProfileRecord, n+50)
		var ok bool
		if n, ok = runtime.MemProfile(recs, false); ok {
			recs = recs[:n]
			break
		}
	}
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

package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/coder/websocket"
)

// snapshotResult is the time to get a snapshot of the largest group: over
// a WebSocket (subscribe sent → snapshot frame read, as a client sees it)
// and over REST (GET /v1/presence/groups/{id}, the server's snapshot and
// encoding plus one loopback transfer: the closest this tool gets to the
// server-side time).
type snapshotResult struct {
	Group   string         `json:"group"`
	Members int            `json:"members"`
	Bytes   int            `json:"bytes"`
	WS      LatencySummary `json:"ws"`
	REST    LatencySummary `json:"rest"`
}

// maxWSProbes keeps the WebSocket probe under the server's default op
// budget (a bucket of 100 ops).
const maxWSProbes = 90

// probeSnapshot measures n snapshots each way (at most maxWSProbes over
// the WebSocket), one at a time, on a connection of its own (a member of
// the group).
func probeSnapshot(ctx context.Context, base, adminToken, secret string, p *plan, n int) (*snapshotResult, error) {
	g := p.largestGroup()
	r := &snapshotResult{Group: p.groupID(g), Members: p.groupSize[g]}
	tok, err := userToken([]byte(secret), p.userID(p.groupStart[g]), time.Now().Add(time.Hour))
	if err != nil {
		return nil, err
	}
	hc := newSourceClient("")
	defer hc.CloseIdleConnections()
	ws, err := dialWS(ctx, hc, wsURL(base), tok)
	if err != nil {
		return nil, fmt.Errorf("presence-bench: snapshot probe: %w", err)
	}
	defer ws.CloseNow()
	if _, err := readHello(ctx, ws); err != nil {
		return nil, err
	}
	var wsh Histogram
	for i := range min(n, maxWSProbes) {
		id := uint64(i + 1)
		start := time.Now()
		if err := ws.Write(ctx, websocket.MessageText, subscribeFrame(id, r.Group, 0, "")); err != nil {
			return nil, err
		}
		_, size, err := awaitInitial(ctx, ws, id, nil)
		if err != nil {
			return nil, fmt.Errorf("presence-bench: snapshot probe: %w", err)
		}
		wsh.Record(time.Since(start))
		r.Bytes = size
	}
	r.WS = wsh.Summary()

	rc := newRESTClient(base, adminToken, 1)
	defer rc.close()
	var resth Histogram
	for range n {
		start := time.Now()
		if _, err := rc.do(ctx, http.MethodGet, "/v1/presence/groups/"+r.Group, nil); err != nil {
			return nil, fmt.Errorf("presence-bench: snapshot probe: %w", err)
		}
		resth.Record(time.Since(start))
	}
	r.REST = resth.Summary()
	return r, nil
}

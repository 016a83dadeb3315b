package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/presenced/presenced/protocol"
)

// API calls a node's REST API with the admin token, through the test
// network.
type API struct {
	http   *http.Client
	admin  string
	secret string
}

func newAPI(n *Network, admin, secret string) *API {
	return &API{http: &http.Client{Transport: n.transport()}, admin: admin, secret: secret}
}

// Reply is the outcome of one call: the HTTP status, and the native error
// code when the body is {"error":{"code",...}}.
type Reply struct {
	Status int
	Code   string
	Body   []byte
}

// OK reports a 2xx status.
func (r Reply) OK() bool { return r.Status >= 200 && r.Status < 300 }

func (r Reply) String() string {
	if r.Code != "" {
		return fmt.Sprintf("%d %s", r.Status, r.Code)
	}
	return strconv.Itoa(r.Status)
}

// do makes one call; err is set only when no HTTP answer came.
func (a *API) do(ctx context.Context, method, url string, body any) (Reply, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return Reply{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return Reply{}, err
	}
	req.Header.Set("Authorization", "Bearer "+a.admin)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return Reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return Reply{}, err
	}
	r := Reply{Status: resp.StatusCode, Body: b}
	if !r.OK() {
		var e struct {
			Error struct{ Code string } `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil {
			r.Code = e.Error.Code
		}
	}
	return r, nil
}

// Snapshot is a group's REST snapshot. Members lists the members who are
// not offline.
type Snapshot struct {
	Rev     uint64            `json:"rev"`
	Epoch   string            `json:"epoch"`
	Online  int               `json:"online"`
	Total   int               `json:"total"`
	Members []protocol.Member `json:"members"`
}

// key is what two nodes serving the same snapshot have in common: the
// revision and every member's status and text.
func (s Snapshot) key() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%d/%d/%d:", s.Epoch, s.Rev, s.Online, s.Total)
	for _, m := range s.Members {
		fmt.Fprintf(&b, "%s=%s/%s,", m.User, m.Status, m.Text)
	}
	return b.String()
}

// status returns a member's status and text, offline when not listed.
func (s Snapshot) status(user string) (protocol.Status, string) {
	for _, m := range s.Members {
		if m.User == user {
			return m.Status, m.Text
		}
	}
	return protocol.StatusOffline, ""
}

// Snapshot reads GET /v1/presence/groups/{group} of the node at base.
func (a *API) Snapshot(ctx context.Context, base, group string) (Snapshot, Reply, error) {
	r, err := a.do(ctx, "GET", base+"/v1/presence/groups/"+group, nil)
	if err != nil || !r.OK() {
		return Snapshot{}, r, err
	}
	var s Snapshot
	if err := json.Unmarshal(r.Body, &s); err != nil {
		return Snapshot{}, r, fmt.Errorf("chaos: snapshot: %w", err)
	}
	return s, r, nil
}

// Ready reads GET /readyz.
func (a *API) Ready(ctx context.Context, base string) (Reply, error) {
	return a.do(ctx, "GET", base+"/readyz", nil)
}

// Publish stores a backend status event and returns its revision once
// acknowledged.
func (a *API) Publish(ctx context.Context, base, user string, status protocol.Status, text, source string) (uint64, Reply, error) {
	r, err := a.do(ctx, "POST", base+"/v1/presence/status",
		map[string]any{"user": user, "status": status, "text": text, "source": source})
	if err != nil || !r.OK() {
		return 0, r, err
	}
	var ok struct{ Rev uint64 }
	if err := json.Unmarshal(r.Body, &ok); err != nil {
		return 0, r, err
	}
	return ok.Rev, r, nil
}

// Metrics reads unlabelled samples of /metrics, in one request so that
// they are consistent with each other.
func (a *API) Metrics(ctx context.Context, base string, names ...string) (map[string]float64, error) {
	r, err := a.do(ctx, "GET", base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	if !r.OK() {
		return nil, fmt.Errorf("chaos: /metrics: %s", r)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(r.Body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		for _, name := range names {
			if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil {
					return nil, err
				}
				out[name] = f
			}
		}
	}
	for _, name := range names {
		if _, ok := out[name]; !ok {
			return nil, fmt.Errorf("chaos: /metrics has no %s", name)
		}
	}
	return out, nil
}

// userToken signs a user JWT valid for a day.
func userToken(secret, user string) (string, error) {
	now := time.Now()
	return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject:   user,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(24 * time.Hour)),
	}).SignedString([]byte(secret))
}

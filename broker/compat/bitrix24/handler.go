package bitrix24

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/presenced/presenced/membership"
)

// Prefix is the path the broker mounts the Handler at.
const Prefix = "/rest/"

// ErrConfig is returned by New for an unusable Config.
var ErrConfig = errors.New("bitrix24: invalid config")

// Config configures a Handler. Directory and Auth are required; every
// other zero value is a usable default.
type Config struct {
	// Directory reads users, groups and members (*membership.Index).
	Directory Directory
	// Auth checks webhook secrets and OAuth access tokens.
	Auth Authenticator
	// Visibility decides which groups a caller may see
	// (*membership.Authority), as on every API.
	Visibility Visibility
	// Logger receives server-side failures (default: no logging).
	Logger *zap.Logger
	// Now returns the current time, for the time object (default time.Now).
	Now func() time.Time
}

// Handler answers Bitrix24 REST calls. It is safe for concurrent use.
type Handler struct {
	cfg Config
	log *zap.Logger
}

// New checks cfg and returns a Handler.
func New(cfg Config) (*Handler, error) {
	switch {
	case cfg.Directory == nil:
		return nil, fmt.Errorf("%w: Directory is required", ErrConfig)
	case cfg.Auth == nil:
		return nil, fmt.Errorf("%w: Auth is required", ErrConfig)
	case cfg.Visibility == nil:
		return nil, fmt.Errorf("%w: Visibility is required", ErrConfig)
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Handler{cfg: cfg, log: cfg.Logger}, nil
}

// call is one authenticated method call.
type call struct {
	r      *http.Request
	params map[string]any
	caller membership.User
}

// methods are the REST methods served, by lower-case name.
var methods = map[string]func(*Handler, *call) (any, *apiError){
	"sonet_group.user.get": (*Handler).groupUsers,
}

// target is a parsed REST path.
type target struct {
	method  string
	webhook bool
	userSeq int64  // webhook only
	secret  string // webhook only
}

// parsePath reads /rest/{method}[.json] or /rest/{userId}/{secret}/{method}[.json].
func parsePath(path string) (target, bool) {
	rest, ok := strings.CutPrefix(path, Prefix)
	if !ok {
		return target{}, false
	}
	parts := strings.Split(rest, "/")
	var t target
	switch len(parts) {
	case 1:
		t.method = parts[0]
	case 3:
		seq, err := strconv.ParseInt(parts[0], 10, 64)
		if err != nil || seq <= 0 || parts[1] == "" {
			return target{}, false
		}
		t = target{method: parts[2], webhook: true, userSeq: seq, secret: parts[1]}
	default:
		return target{}, false
	}
	t.method = strings.ToLower(strings.TrimSuffix(t.method, ".json"))
	return t, t.method != ""
}

// ServeHTTP answers a REST call. Checks run in the REST server's order:
// path, authentication, method, scope, then the method's own checks.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := h.cfg.Now()
	t, ok := parsePath(r.URL.Path)
	if !ok {
		h.fail(w, errMethodNotFound)
		return
	}
	p := params(r)
	c := &call{r: r, params: p}
	var e *apiError
	if t.webhook {
		c.caller, e = h.webhookUser(r, t)
	} else {
		c.caller, e = h.tokenUser(r, p)
	}
	if e != nil {
		h.fail(w, e)
		return
	}
	method, ok := methods[t.method]
	if !ok {
		h.fail(w, errMethodNotFound)
		return
	}
	methodStart := h.cfg.Now()
	result, e := method(h, c)
	if e != nil {
		h.fail(w, e)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Result any    `json:"result"`
		Time   timing `json:"time"`
	}{result, newTiming(start, methodStart, h.cfg.Now())})
}

func (h *Handler) fail(w http.ResponseWriter, e *apiError) { writeJSON(w, e.status, e.body) }

package rocketchat

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/presenced/presenced/broker/compat/internal/query"
	"github.com/presenced/presenced/membership"
)

// Prefix is the path the broker mounts the Handler at.
const Prefix = "/api/v1/"

// ErrConfig is returned by New for an unusable Config.
var ErrConfig = errors.New("rocketchat: invalid config")

// Config configures a Handler. Directory, Presence and Auth are required;
// every other zero value is a usable default.
type Config struct {
	// Directory reads users, groups, members and roles (*membership.Index).
	Directory Directory
	// Presence reads statuses.
	Presence StatusReader
	// StatusWriter stores users.setStatus. Nil answers that endpoint with
	// "Change status is not allowed [error-not-allowed]", as upstream does
	// when status changes are disabled.
	StatusWriter StatusWriter
	// Auth checks the X-User-Id and X-Auth-Token pair.
	Auth Authenticator
	// Visibility decides whose presence a caller sees and which groups it
	// may watch (required).
	Visibility Visibility
	// Logger receives server-side failures (default: no logging).
	Logger *zap.Logger
	// Now returns the current time (default time.Now).
	Now func() time.Time
	// RateLimit limits calls per route and client IP (default off).
	// Holders of api-bypass-rate-limit (admins) are not limited.
	RateLimit RateLimit
	// PresenceBroadcastDisabled makes users.presence answer an empty full
	// list, like upstream's Presence_broadcast_disabled setting.
	PresenceBroadcastDisabled bool
	// RejectLegacyQuery ignores groups.online's legacy query={"_id":"…"}
	// parameter, as upstream 7.x does by default. By default it is honoured
	// when it holds only _id.
	RejectLegacyQuery bool
	// Permissions grants Rocket.Chat permissions to global roles: permission
	// id → role ids. Admins hold every permission and everybody holds
	// view-joined-room whatever this says.
	Permissions map[string][]string
}

// Handler answers the Rocket.Chat endpoints. It is safe for concurrent use.
type Handler struct {
	cfg     Config
	dir     Directory
	log     *zap.Logger
	now     func() time.Time
	limiter *limiter // nil when rate limiting is off
	perms   map[string][]string
}

// New checks cfg and returns a Handler.
func New(cfg Config) (*Handler, error) {
	switch {
	case cfg.Directory == nil:
		return nil, fmt.Errorf("%w: Directory is required", ErrConfig)
	case cfg.Presence == nil:
		return nil, fmt.Errorf("%w: Presence is required", ErrConfig)
	case cfg.Auth == nil:
		return nil, fmt.Errorf("%w: Auth is required", ErrConfig)
	case cfg.Visibility == nil:
		return nil, fmt.Errorf("%w: Visibility is required", ErrConfig)
	case cfg.RateLimit.Calls < 0 || cfg.RateLimit.Window < 0:
		return nil, fmt.Errorf("%w: RateLimit must not be negative", ErrConfig)
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Handler{
		cfg:     cfg,
		dir:     cfg.Directory,
		log:     cfg.Logger,
		now:     cfg.Now,
		limiter: newLimiter(cfg.RateLimit, cfg.Now),
		perms:   cfg.Permissions,
	}, nil
}

// call is one authenticated request.
type call struct {
	ctx  context.Context
	r    *http.Request
	q    query.Values
	user membership.User // the caller
}

// route is one endpoint.
type route struct {
	method string
	// validate checks the query before authentication, as upstream's typed
	// routes do; nil for legacy routes.
	validate func(query.Values) *apiError
	serve    func(*Handler, *call) (any, *apiError)
}

var routes = map[string]route{
	"groups.online":        {http.MethodGet, groupsOnlineSchema.validate, (*Handler).groupsOnline},
	"roles.getUsersInRole": {http.MethodGet, validateUsersInRole, (*Handler).usersInRole},
	"users.presence":       {http.MethodGet, usersPresenceSchema.validate, (*Handler).usersPresence},
	"users.getStatus":      {http.MethodGet, nil, (*Handler).getStatus},
	"users.setStatus":      {http.MethodPost, nil, (*Handler).setStatus},
}

// ServeHTTP routes a request whose path starts with Prefix. Checks run in
// upstream's order: route, query schema, authentication, rate limit, then
// the endpoint's own checks.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutPrefix(r.URL.Path, Prefix)
	rt, found := routes[name]
	if !ok || !found || r.Method != rt.method {
		writeError(w, notFound())
		return
	}
	q := query.Parse(r.URL.RawQuery)
	if rt.validate != nil {
		if e := rt.validate(q); e != nil {
			writeError(w, e)
			return
		}
	}
	user, e := h.authenticate(r)
	if e != nil {
		writeError(w, e)
		return
	}
	if h.limiter != nil && !h.can(user, permBypassRateLimit) {
		if e := h.limiter.enforce(w, r.Method+" "+name, clientIP(r)); e != nil {
			writeError(w, e)
			return
		}
	}
	body, e := rt.serve(h, &call{ctx: r.Context(), r: r, q: q, user: user})
	if e != nil {
		writeError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// authenticate resolves the X-User-Id and X-Auth-Token pair to an active
// user.
func (h *Handler) authenticate(r *http.Request) (membership.User, *apiError) {
	id, secret := r.Header.Get("X-User-Id"), r.Header.Get("X-Auth-Token")
	if id == "" || secret == "" {
		return membership.User{}, notLoggedIn()
	}
	u, err := h.cfg.Auth.AuthenticateUser(r.Context(), id, secret)
	switch {
	case errors.Is(err, membership.ErrUnauthorized), errors.Is(err, membership.ErrTokenExpired):
		return membership.User{}, notLoggedIn()
	case err != nil:
		h.log.Error("rocketchat: authenticate", zap.String("user", id), zap.Error(err))
		return membership.User{}, internalError()
	case u.ID != id || !u.Active:
		return membership.User{}, notLoggedIn()
	}
	return u, nil
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

package cometchat

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/presenced/presenced/broker/compat/internal/query"
	"github.com/presenced/presenced/membership"
)

// Prefix is the path the broker mounts the Handler at.
const Prefix = "/v3/"

// ErrConfig is returned by New for an unusable Config.
var ErrConfig = errors.New("cometchat: invalid config")

// Config configures a Handler. Directory, Presence and Auth are required;
// every other zero value is a usable default.
type Config struct {
	// Directory reads groups, members and users (*membership.Index).
	Directory Directory
	// Presence reads statuses.
	Presence StatusReader
	// Auth resolves the apikey header to an API token.
	Auth Authenticator
	// Visibility decides which groups a key bound to a user may list, with
	// their members' status (*membership.Authority).
	Visibility Visibility
	// AppID, when set, must match the appid header of every request, as the
	// app id in CometChat's host name would (default: not checked).
	AppID string
	// Logger receives server-side failures (default: no logging).
	Logger *zap.Logger
	// Now returns the current time, stamped on the answer's cursor
	// (default time.Now).
	Now func() time.Time
}

// Handler answers the CometChat endpoint. It is safe for concurrent use.
type Handler struct {
	cfg Config
	log *zap.Logger
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
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Handler{cfg: cfg, log: cfg.Logger}, nil
}

// ServeHTTP answers GET /v3/groups/{guid}/members. Checks run in this
// order: route, method, app id, API key, the key's scope, query
// parameters, group.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	guid, ok := membersPath(r.URL.Path)
	if !ok {
		h.fail(w, newError(http.StatusNotFound, codeNotFound, "The requested resource does not exist.",
			fmt.Sprintf("There is no route %s %s.", r.Method, r.URL.Path)))
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		h.fail(w, newError(http.StatusMethodNotAllowed, codeMethod, "The method is not allowed for this resource.",
			fmt.Sprintf("%s is not supported on %s; use GET.", r.Method, r.URL.Path)))
		return
	}
	tok, e := h.authenticate(r)
	if e != nil {
		h.fail(w, e)
		return
	}
	body, e := h.members(tok.UserID, guid, query.Parse(r.URL.RawQuery))
	if e != nil {
		h.fail(w, e)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

func (h *Handler) fail(w http.ResponseWriter, e *apiError) { writeJSON(w, e.status, e.body) }

// membersPath extracts guid from /v3/groups/{guid}/members.
func membersPath(path string) (guid string, ok bool) {
	rest, ok := strings.CutPrefix(path, Prefix+"groups/")
	if !ok {
		return "", false
	}
	guid, ok = strings.CutSuffix(rest, "/members")
	if !ok || guid == "" || strings.Contains(guid, "/") {
		return "", false
	}
	return guid, true
}

// authenticate checks the app id and the API key, and returns the key's
// token. The key itself is never echoed in an error.
func (h *Handler) authenticate(r *http.Request) (membership.Token, *apiError) {
	if h.cfg.AppID != "" {
		switch id := r.Header.Get("appid"); {
		case id == "":
			return membership.Token{}, newError(http.StatusUnauthorized, codeEmptyAppID, "The appId cannot be empty.",
				"The appid header is missing or empty.")
		case id != h.cfg.AppID:
			msg := fmt.Sprintf("The appId %s is invalid. Please use a correct appId.", id)
			return membership.Token{}, newError(http.StatusUnauthorized, codeInvalidAppID, msg, msg)
		}
	}
	key := r.Header.Get("apikey") // header names are case-insensitive: apiKey, APIKEY
	if key == "" {
		return membership.Token{}, newError(http.StatusUnauthorized, codeEmptyAPIKey, "The apiKey cannot be empty.",
			"The apikey header is missing or empty. Please use a valid API key.")
	}
	tok, err := h.cfg.Auth.AuthenticateToken(r.Context(), key)
	switch {
	case errors.Is(err, membership.ErrUnauthorized), errors.Is(err, membership.ErrTokenExpired):
		const msg = "The key does not exist. Please use correct apiKey."
		return membership.Token{}, newError(http.StatusUnauthorized, codeAPIKeyNotFound, msg, msg)
	case err != nil:
		h.log.Error("cometchat: authenticate", zap.Error(err))
		return membership.Token{}, newError(http.StatusInternalServerError, codeInternal, "Something went wrong. Please try again.", "Authentication failed on the server.")
	case !tok.Allows(membership.ScopeMembershipRead):
		return membership.Token{}, newError(http.StatusForbidden, codeNoAccess,
			"The key cannot be used to perform this operation. Please use API key with a correct scope to perform the operation.",
			"The key does not have enough clearance. To perform the operation, please use the API key with the correct scope.")
	}
	return tok, nil
}

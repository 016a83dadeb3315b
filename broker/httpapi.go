package broker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/presenced/presenced/broker/internal/strictjson"
	"github.com/presenced/presenced/broker/webhook"
	"github.com/presenced/presenced/membership"
	"go.uber.org/zap"
)

// Error codes of the native API, in {"error":{"code","message"}}.
const (
	codeBadRequest   = "bad_request"
	codeUnauthorized = "unauthorized"
	codeTokenExpired = "token_expired"
	codeForbidden    = "forbidden"
	codeNotFound     = "not_found"
	codeConflict     = "conflict"
	codeTooLarge     = "too_large"
	codeRateLimited  = "rate_limited"
	codeUnavailable  = "unavailable"
	codeInternal     = "internal"
)

// apiError is an error with its HTTP status and code.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.message }

func badRequest(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, codeBadRequest, fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError maps err to the native error body and status.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	var ve *membership.ValidationError
	var mbe *http.MaxBytesError
	var he *webhook.HTTPError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &he):
		ae = &apiError{he.Status, he.Code, he.Message}
	case errors.As(err, &ve):
		ae = &apiError{http.StatusBadRequest, codeBadRequest, ve.Field + ": " + ve.Message}
	case errors.As(err, &mbe):
		ae = &apiError{http.StatusRequestEntityTooLarge, codeTooLarge, fmt.Sprintf("body larger than %d bytes", mbe.Limit)}
	case errors.Is(err, membership.ErrNotFound):
		ae = &apiError{http.StatusNotFound, codeNotFound, strings.TrimSuffix(err.Error(), ": "+membership.ErrNotFound.Error()) + " not found"}
	case errors.Is(err, membership.ErrExists):
		ae = &apiError{http.StatusConflict, codeConflict, strings.TrimSuffix(err.Error(), ": "+membership.ErrExists.Error()) + " already exists"}
	case errors.Is(err, membership.ErrConflict):
		ae = &apiError{http.StatusConflict, codeConflict, "concurrent update, retry"}
	case errors.Is(err, membership.ErrInvalid):
		ae = &apiError{http.StatusBadRequest, codeBadRequest, err.Error()}
	case errors.Is(err, membership.ErrTokenExpired):
		ae = &apiError{http.StatusUnauthorized, codeTokenExpired, "token expired"}
	case errors.Is(err, membership.ErrForbidden):
		ae = &apiError{http.StatusForbidden, codeForbidden, strings.TrimPrefix(err.Error(), membership.ErrForbidden.Error()+": ")}
	case errors.Is(err, membership.ErrUnauthorized):
		ae = &apiError{http.StatusUnauthorized, codeUnauthorized, "missing or invalid credentials"}
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		return // the client went away: nobody to answer
	case errors.Is(err, ErrNotReady):
		ae = &apiError{http.StatusServiceUnavailable, codeUnavailable, "not ready, retry"}
	case errors.Is(err, context.DeadlineExceeded), storeUnavailable(err):
		s.log.Warn("request failed: store unavailable", zap.String("path", r.URL.Path), zap.Error(err))
		ae = &apiError{http.StatusServiceUnavailable, codeUnavailable, "the presence store is unavailable, retry"}
	default:
		s.log.Error("request failed", zap.String("path", r.URL.Path), zap.Error(err))
		ae = &apiError{http.StatusInternalServerError, codeInternal, "internal error"}
	}
	switch ae.status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="presenced"`)
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, ae.status, map[string]any{"error": map[string]string{"code": ae.code, "message": ae.message}})
}

// decodeJSON reads a JSON body into v strictly (see strictjson): one
// value, no unknown fields, names matched case-sensitively, no member
// twice, valid UTF-8, at most the configured size.
func (s *Server) decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	err := strictjson.Decode(http.MaxBytesReader(w, r.Body, s.cfg.Limits.MaxBodyBytes), v)
	var mbe *http.MaxBytesError
	switch {
	case err == nil, errors.As(err, &mbe):
		return err
	}
	return badRequest("%s", err.Error())
}

// principalKey carries the authenticated Principal in a request context.
type principalKey struct{}

func principalFrom(ctx context.Context) Principal {
	p, _ := ctx.Value(principalKey{}).(Principal)
	return p
}

// handler is an API handler that returns its error instead of writing it.
type handler func(w http.ResponseWriter, r *http.Request) error

// api wraps h with authentication, the scope check, the rate limit and
// error rendering. scope "" means any authenticated principal.
func (s *Server) api(scope string, h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.isReady.Load() {
			s.writeError(w, r, ErrNotReady)
			return
		}
		if err := s.unavailable(); err != nil {
			s.writeError(w, r, &apiError{http.StatusServiceUnavailable, codeUnavailable,
				"presence is unavailable on this node: " + err.Error()})
			return
		}
		p, err := s.auth.authenticate(r.Context(), bearer(r))
		if err != nil {
			s.metrics.authFailures.WithLabelValues("rest").Inc()
			if !s.limits.allowIP(w, r) {
				return
			}
			s.writeError(w, r, err)
			return
		}
		if !s.limits.allowPrincipal(w, p) {
			return
		}
		if scope != "" && !p.Allows(scope) {
			s.writeError(w, r, &apiError{http.StatusForbidden, codeForbidden, "this token lacks the " + scope + " scope"})
			return
		}
		if err := h(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p))); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// pageParams reads ?limit= (default 100, max 1000) and ?cursor=.
func pageParams(r *http.Request) (after string, limit int, err error) {
	limit = 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return "", 0, badRequest("limit must be an integer from 1 to 1000")
		}
		limit = n
	}
	if c := r.URL.Query().Get("cursor"); c != "" {
		b, err := base64.RawURLEncoding.DecodeString(c)
		if err != nil || !membership.ValidID(string(b)) {
			return "", 0, badRequest("cursor is not one this API returned")
		}
		after = string(b)
	}
	return after, limit, nil
}

// listResponse is a page of a cursor-paginated list.
type listResponse[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"nextCursor,omitempty"`
}

// filteredPage reads list (a page of up to limit items after a cursor, in
// cursor order) from after until limit items pass keep or the list ends,
// and returns those that pass: a page of the items the caller may see.
func filteredPage[T any](list func(after string, limit int) []T, id func(T) string, after string, limit int, keep func(T) bool) []T {
	var out []T
	for {
		page := list(after, limit)
		for _, it := range page {
			if keep(it) {
				if out = append(out, it); len(out) == limit {
					return out
				}
			}
		}
		if len(page) < limit {
			return out
		}
		after = id(page[len(page)-1])
	}
}

func newPage[T any](items []T, limit int, id func(T) string) listResponse[T] {
	if items == nil {
		items = []T{}
	}
	resp := listResponse[T]{Items: items}
	if len(items) == limit && limit > 0 {
		resp.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(id(items[len(items)-1])))
	}
	return resp
}

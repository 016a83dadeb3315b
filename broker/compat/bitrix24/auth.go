package bitrix24

import (
	"errors"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/presenced/presenced/membership"
)

// webhookUser checks /rest/{userSeq}/{secret}/: the user is found by numeric
// alias and the secret is one of their credentials.
func (h *Handler) webhookUser(r *http.Request, t target) (membership.User, *apiError) {
	u, ok := h.cfg.Directory.UserBySeq(t.userSeq)
	if !ok {
		return membership.User{}, errInvalidCredential
	}
	u, err := h.cfg.Auth.AuthenticateUser(r.Context(), u.ID, t.secret)
	switch {
	case isAuthError(err):
		return membership.User{}, errInvalidCredential
	case err != nil:
		h.log.Error("bitrix24: webhook authentication", zap.Int64("user_seq", t.userSeq), zap.Error(err))
		return membership.User{}, errInternal
	case !u.Active:
		return membership.User{}, errInvalidCredential
	}
	return u, nil
}

// tokenUser checks an OAuth access token from the auth or access_token
// parameter or an Authorization: Bearer header. The token must act as an
// active user, with the connect scope (acting as the user).
func (h *Handler) tokenUser(r *http.Request, p map[string]any) (membership.User, *apiError) {
	token := stringParam(p, "auth")
	if token == "" {
		token = stringParam(p, "access_token")
	}
	if token == "" {
		if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			token = strings.TrimSpace(v)
		}
	}
	if token == "" {
		return membership.User{}, errNoAuth
	}
	tok, err := h.cfg.Auth.AuthenticateToken(r.Context(), token)
	switch {
	case errors.Is(err, membership.ErrTokenExpired):
		return membership.User{}, errExpiredToken
	case errors.Is(err, membership.ErrUnauthorized):
		return membership.User{}, errInvalidToken
	case err != nil:
		h.log.Error("bitrix24: token authentication", zap.Error(err))
		return membership.User{}, errInternal
	}
	u, ok := h.cfg.Directory.User(tok.UserID)
	if tok.UserID == "" || !ok || !u.Active {
		return membership.User{}, errInvalidToken
	}
	if !tok.Allows(membership.ScopeConnect) {
		return membership.User{}, errScope
	}
	return u, nil
}

func isAuthError(err error) bool {
	return errors.Is(err, membership.ErrUnauthorized) || errors.Is(err, membership.ErrTokenExpired)
}

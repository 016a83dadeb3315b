package broker

import (
	"fmt"
	"net/http"
	"time"

	"github.com/presenced/presenced/membership"
)

type tokenBody struct {
	Name      string     `json:"name"`
	UserID    string     `json:"userId"`
	Scopes    []string   `json:"scopes"`
	ExpiresAt *time.Time `json:"expiresAt"`
}

// tokenView is a token as the API shows it: never the hash.
type tokenView struct {
	ID        string     `json:"id"`
	Name      string     `json:"name,omitempty"`
	UserID    string     `json:"userId,omitempty"`
	Scopes    []string   `json:"scopes"`
	CreatedAt time.Time  `json:"createdAt"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
	// IssuedBy is the token that issued this one.
	IssuedBy string `json:"issuedBy,omitempty"`
	// Token is the secret, present only in the answer that created it.
	Token string `json:"token,omitempty"`
}

func viewToken(t membership.Token) tokenView {
	return tokenView{ID: t.ID, Name: t.Name, UserID: t.UserID, Scopes: t.Scopes, CreatedAt: t.CreatedAt,
		ExpiresAt: t.ExpiresAt, IssuedBy: t.IssuedBy}
}

// createToken issues a token, as the authority rules allow the caller
// (membership.Authority.CheckIssue): for its own user only, scopes it
// holds, no longer than its own life, unless it has the admin scope.
func (s *Server) createToken(w http.ResponseWriter, r *http.Request) error {
	var b tokenBody
	if err := s.decodeJSON(w, r, &b); err != nil {
		return err
	}
	spec := membership.TokenSpec{Name: b.Name, UserID: b.UserID, Scopes: b.Scopes, ExpiresAt: b.ExpiresAt}
	if err := s.authority.CheckIssue(principalFrom(r.Context()), &spec); err != nil {
		return err
	}
	secret, tok, err := s.store.CreateToken(r.Context(), spec)
	if err != nil {
		return err
	}
	v := viewToken(tok)
	v.Token = secret
	writeJSON(w, http.StatusCreated, v)
	return nil
}

// listTokens lists the tokens the caller may manage: every one with the
// admin scope, else its own and those it issued.
func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) error {
	p := principalFrom(r.Context())
	var out []tokenView
	for _, t := range s.store.Index().Tokens() {
		if s.authority.CanManageToken(p, t) {
			out = append(out, viewToken(t))
		}
	}
	if out == nil {
		out = []tokenView{}
	}
	writeJSON(w, http.StatusOK, listResponse[tokenView]{Items: out})
	return nil
}

// revokeToken revokes a token the caller may manage, with every token it
// issued. Another's token reads as missing.
func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if t, ok := s.store.Index().Token(id); !ok || !s.authority.CanManageToken(principalFrom(r.Context()), t) {
		return fmt.Errorf("token %s: %w", id, membership.ErrNotFound)
	}
	if _, err := s.store.RevokeToken(r.Context(), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

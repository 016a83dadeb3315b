package broker

import (
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
	// Token is the secret, present only in the answer that created it.
	Token string `json:"token,omitempty"`
}

func viewToken(t membership.Token) tokenView {
	return tokenView{ID: t.ID, Name: t.Name, UserID: t.UserID, Scopes: t.Scopes, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt}
}

// createToken issues a token. A principal may only hand out scopes it holds
// itself, so a tokens-scoped token cannot mint an admin token.
func (s *Server) createToken(w http.ResponseWriter, r *http.Request) error {
	var b tokenBody
	if err := s.decodeJSON(w, r, &b); err != nil {
		return err
	}
	p := principalFrom(r.Context())
	for _, sc := range b.Scopes {
		if !p.Allows(sc) {
			return &apiError{http.StatusForbidden, codeForbidden, "cannot grant scope " + sc + " that this token lacks"}
		}
	}
	secret, tok, err := s.store.CreateToken(r.Context(), membership.TokenSpec{
		Name: b.Name, UserID: b.UserID, Scopes: b.Scopes, ExpiresAt: b.ExpiresAt,
	})
	if err != nil {
		return err
	}
	v := viewToken(tok)
	v.Token = secret
	writeJSON(w, http.StatusCreated, v)
	return nil
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) error {
	var out []tokenView
	for _, t := range s.store.Index().Tokens() {
		out = append(out, viewToken(t))
	}
	if out == nil {
		out = []tokenView{}
	}
	writeJSON(w, http.StatusOK, listResponse[tokenView]{Items: out})
	return nil
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) error {
	if err := s.store.RevokeToken(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

package membership

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"time"
)

// TokenPrefix starts every token the store generates, so that leaked tokens
// are easy to recognise and scan for.
const TokenPrefix = "pd_"

// NewTokenSecret returns a new random token secret.
func NewTokenSecret() string { return TokenPrefix + randomString(32) }

// TokenSpec describes a token to issue.
type TokenSpec struct {
	Name      string
	UserID    string // the user the token acts as; "" for a service token
	Scopes    []string
	ExpiresAt *time.Time
	// Secret, when set, is used instead of a generated one (an operator's
	// --admin-token). It must be at least 16 bytes.
	Secret string
	// ID, when set, names the token instead of a generated id; an existing
	// token with this id is replaced.
	ID string
	// IssuedBy is the id of the token that issues this one (see
	// Authority.CheckIssue).
	IssuedBy string
}

// HashToken returns the stored form of a token secret.
func HashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// CreateToken issues a token and returns its secret, which is shown once and
// never stored: only its hash is.
func (s *Store) CreateToken(ctx context.Context, spec TokenSpec) (secret string, tok Token, err error) {
	if err := validateScopes(spec.Scopes); err != nil {
		return "", Token{}, err
	}
	if err := checkText("name", spec.Name, 128); err != nil {
		return "", Token{}, err
	}
	if spec.UserID != "" {
		if _, ok := s.index.User(spec.UserID); !ok {
			return "", Token{}, fmt.Errorf("user %s: %w", spec.UserID, ErrNotFound)
		}
	}
	now := s.cfg.Now().UTC()
	if spec.ExpiresAt != nil && !spec.ExpiresAt.After(now) {
		return "", Token{}, invalid("expiresAt", "must be in the future")
	}
	secret = spec.Secret
	if secret == "" {
		secret = NewTokenSecret()
	} else if len(secret) < 16 {
		return "", Token{}, invalid("secret", "must be at least 16 bytes")
	}
	id := spec.ID
	if id == "" {
		id = hex.EncodeToString(randomBytes(8))
	} else if err := checkID("id", id); err != nil {
		return "", Token{}, err
	}
	tok = Token{
		ID:        id,
		Name:      spec.Name,
		UserID:    spec.UserID,
		Scopes:    spec.Scopes,
		Hash:      HashToken(secret),
		CreatedAt: now,
		ExpiresAt: spec.ExpiresAt,
		IssuedBy:  spec.IssuedBy,
	}
	if _, err := s.put(ctx, tokenKey(id), tok, nil); err != nil {
		return "", Token{}, err
	}
	return secret, tok, nil
}

// RevokeToken deletes a token and every token it issued, directly or
// through them: they stop working at once on this node and as soon as
// other nodes apply the deletions. It returns the ids revoked.
func (s *Store) RevokeToken(ctx context.Context, id string) ([]string, error) {
	if !s.find(ctx, tokenKey(id), func() bool { _, ok := s.index.Token(id); return ok }) {
		return nil, fmt.Errorf("token %s: %w", id, ErrNotFound)
	}
	ids := s.index.tokenTree(id)
	// Children first: a failure halfway leaves no token whose issuer is
	// gone while it still works.
	for i := len(ids) - 1; i >= 0; i-- {
		if err := s.del(ctx, tokenKey(ids[i])); err != nil {
			return ids[i+1:], err
		}
	}
	return ids, nil
}

// Authenticate resolves a token secret. It fails with ErrTokenExpired for an
// expired token, and with ErrUnauthorized for an unknown secret, a token
// whose user is deleted or deactivated, or one whose issuer, or any token
// further up, is gone or bound to such a user: a token works only while the
// token that issued it does. So it expires with them too: the token
// returned carries the earliest expiry along its issuers as its ExpiresAt,
// and one whose issuer expired fails with ErrTokenExpired.
func (s *Store) Authenticate(_ context.Context, secret string) (Token, error) {
	if secret == "" {
		return Token{}, ErrUnauthorized
	}
	tok, ok := s.index.TokenByHash(HashToken(secret))
	if !ok {
		return Token{}, ErrUnauthorized
	}
	now := s.cfg.Now()
	if tok.Expired(now) {
		return Token{}, ErrTokenExpired
	}
	until, err := s.index.standing(tok)
	if err != nil {
		return Token{}, err
	}
	if !until.IsZero() {
		tok.ExpiresAt = &until
		if tok.Expired(now) {
			return Token{}, ErrTokenExpired
		}
	}
	return tok, nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return b
}

func randomString(n int) string {
	return base64.RawURLEncoding.EncodeToString(randomBytes(n))
}

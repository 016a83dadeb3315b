package broker

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/presenced/presenced/membership"
)

// Principal is who made a request: an API token, or a user by JWT.
type Principal struct {
	// UserID is the user acted for; "" for a service token.
	UserID string
	// TokenID is the API token's id; "" for a JWT.
	TokenID string
	// Scopes are what the principal may do. A JWT carries ScopeConnect.
	Scopes []string
	// Expires is when the credential stops working (zero: never).
	Expires time.Time
}

// Allows reports whether the principal holds scope, or admin.
func (p Principal) Allows(scope string) bool {
	return slices.Contains(p.Scopes, membership.ScopeAdmin) || slices.Contains(p.Scopes, scope)
}

// authenticator verifies API tokens (through the membership store) and user
// JWTs (HS256 with a shared secret, RS256/ES256 with public keys).
type authenticator struct {
	store  *membership.Store
	secret []byte
	keys   []crypto.PublicKey
}

func newAuthenticator(store *membership.Store, secret string, pemKeys []byte) (*authenticator, error) {
	a := &authenticator{store: store}
	if secret != "" {
		if len(secret) < 32 {
			return nil, fmt.Errorf("%w: --jwt-secret must be at least 32 bytes", ErrConfig)
		}
		a.secret = []byte(secret)
	}
	for rest := pemKeys; len(rest) > 0; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: JWT public key: %v", ErrConfig, err)
		}
		a.keys = append(a.keys, k)
	}
	return a, nil
}

var errNoCredential = errors.New("no credential")

// authenticate resolves a credential: an API token secret or a user JWT.
// Errors wrap membership.ErrUnauthorized or membership.ErrTokenExpired.
func (a *authenticator) authenticate(ctx context.Context, credential string) (Principal, error) {
	if credential == "" {
		return Principal{}, fmt.Errorf("%w: %w", membership.ErrUnauthorized, errNoCredential)
	}
	if strings.Count(credential, ".") == 2 && (a.secret != nil || len(a.keys) > 0) {
		if p, err := a.verifyJWT(credential); err == nil || errors.Is(err, membership.ErrTokenExpired) {
			return p, err
		}
	}
	tok, err := a.store.Authenticate(ctx, credential)
	if err != nil {
		return Principal{}, err
	}
	if tok.UserID != "" {
		if u, ok := a.store.Index().User(tok.UserID); !ok || !u.Active {
			return Principal{}, fmt.Errorf("%w: user inactive or deleted", membership.ErrUnauthorized)
		}
	}
	p := Principal{UserID: tok.UserID, TokenID: tok.ID, Scopes: tok.Scopes}
	if tok.ExpiresAt != nil {
		p.Expires = *tok.ExpiresAt
	}
	return p, nil
}

func (a *authenticator) verifyJWT(raw string) (Principal, error) {
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(raw, &claims, a.keyFor,
		jwt.WithValidMethods([]string{"HS256", "RS256", "ES256"}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(5*time.Second))
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return Principal{}, fmt.Errorf("%w: %v", membership.ErrTokenExpired, err)
		}
		return Principal{}, fmt.Errorf("%w: %v", membership.ErrUnauthorized, err)
	}
	u, ok := a.store.Index().User(claims.Subject)
	if !ok || !u.Active {
		return Principal{}, fmt.Errorf("%w: unknown or inactive user %q", membership.ErrUnauthorized, claims.Subject)
	}
	return Principal{UserID: u.ID, Scopes: []string{membership.ScopeConnect}, Expires: claims.ExpiresAt.Time}, nil
}

func (a *authenticator) keyFor(t *jwt.Token) (any, error) {
	switch t.Method.(type) {
	case *jwt.SigningMethodHMAC:
		if a.secret == nil {
			return nil, errors.New("HS256 tokens are not accepted")
		}
		return a.secret, nil
	default:
		if len(a.keys) == 0 {
			return nil, errors.New("no public key configured")
		}
		// Try every configured key of the right type: key rotation keeps
		// several.
		var ks jwt.VerificationKeySet
		for _, k := range a.keys {
			ks.Keys = append(ks.Keys, k)
		}
		return ks, nil
	}
}

// bearer extracts the credential of an HTTP request from the Authorization
// header.
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// compatAuth adapts the authenticator to the vendor packages' interface.
type compatAuth struct{ a *authenticator }

// AuthenticateUser checks a credential presented on behalf of userID: a
// token of that user or a JWT whose subject is that user.
func (c compatAuth) AuthenticateUser(ctx context.Context, userID, credential string) (membership.User, error) {
	p, err := c.a.authenticate(ctx, credential)
	if err != nil {
		return membership.User{}, err
	}
	if p.UserID == "" || p.UserID != userID {
		return membership.User{}, fmt.Errorf("%w: credential is not %q's", membership.ErrUnauthorized, userID)
	}
	u, ok := c.a.store.Index().User(userID)
	if !ok {
		return membership.User{}, membership.ErrUnauthorized
	}
	return u, nil
}

// AuthenticateToken resolves an API token.
func (c compatAuth) AuthenticateToken(ctx context.Context, token string) (membership.Token, error) {
	return c.a.store.Authenticate(ctx, token)
}

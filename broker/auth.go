package broker

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/presenced/presenced/membership"
	"github.com/prometheus/client_golang/prometheus"
)

// Principal is who made a request: an API token, or a user by JWT (which
// carries ScopeConnect). The authority rules take it as it is.
type Principal = membership.Credential

// authenticator verifies API tokens (through the membership store) and user
// JWTs (HS256 with a shared secret, RS256/ES256 with public keys).
type authenticator struct {
	store  *membership.Store
	secret []byte
	keys   []crypto.PublicKey
	// JWT claims checked besides the signature and exp.
	audience, issuer string
	maxLife          time.Duration
	verified         jwtCache
}

func newAuthenticator(store *membership.Store, cfg Config) (*authenticator, error) {
	a := &authenticator{store: store, audience: cfg.JWTAudience, issuer: cfg.JWTIssuer, maxLife: cfg.JWTMaxLifetime}
	secret, pemKeys := cfg.JWTSecret, cfg.JWTPublicKeys
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
	tok, err := a.store.Authenticate(ctx, credential) // the user's state and the issuers' too
	if err != nil {
		return Principal{}, err
	}
	p := Principal{UserID: tok.UserID, TokenID: tok.ID, Scopes: tok.Scopes}
	if tok.ExpiresAt != nil {
		p.Expires = *tok.ExpiresAt
	}
	return p, nil
}

func (a *authenticator) verifyJWT(raw string) (Principal, error) {
	k := keyOf(raw) // hashed once, for the lookup and, on a miss, the entry
	v, ok, expired := a.verified.get(k, time.Now())
	switch {
	case expired:
		return Principal{}, fmt.Errorf("%w: token has invalid claims: token is expired", membership.ErrTokenExpired)
	case !ok:
		var err error
		if v, err = a.parseJWT(raw); err != nil {
			return Principal{}, err
		}
		a.verified.put(k, v)
	}
	u, ok := a.store.Index().User(v.subject)
	if !ok || !u.Active {
		return Principal{}, fmt.Errorf("%w: unknown or inactive user %q", membership.ErrUnauthorized, v.subject)
	}
	return Principal{UserID: u.ID, Scopes: []string{membership.ScopeConnect}, Expires: v.expires}, nil
}

// parseJWT checks raw's signature and claims.
func (a *authenticator) parseJWT(raw string) (verifiedJWT, error) {
	if testHookParseJWT != nil {
		testHookParseJWT()
	}
	var claims strictClaims
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{"HS256", "RS256", "ES256"}),
		jwt.WithExpirationRequired(),
		// An iat in the future is refused: the lifetime below counts from
		// it, and a future one made a long-lived token look short.
		jwt.WithIssuedAt(),
		jwt.WithLeeway(jwtLeeway),
	}
	if a.audience != "" {
		opts = append(opts, jwt.WithAudience(a.audience))
	}
	if a.issuer != "" {
		opts = append(opts, jwt.WithIssuer(a.issuer))
	}
	_, err := jwt.ParseWithClaims(raw, &claims, a.keyFor, opts...)
	if err == nil && a.maxLife > 0 {
		from := time.Now()
		if claims.IssuedAt != nil {
			from = claims.IssuedAt.Time
		}
		if life := claims.ExpiresAt.Sub(from); life > a.maxLife+jwtLeeway {
			err = fmt.Errorf("the token lives %v, more than the %v allowed (--jwt-max-lifetime)", life.Round(time.Second), a.maxLife)
		}
	}
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return verifiedJWT{}, fmt.Errorf("%w: %v", membership.ErrTokenExpired, err)
		}
		return verifiedJWT{}, fmt.Errorf("%w: %v", membership.ErrUnauthorized, err)
	}
	return verifiedJWT{subject: claims.Subject, expires: claims.ExpiresAt.Time}, nil
}

// strictClaims are the registered claims with RFC 7519's types: exp, iat
// and nbf are JSON numbers. jwt.NumericDate also reads a number sent as a
// string, which no conforming issuer sends.
type strictClaims struct{ jwt.RegisteredClaims }

func (c *strictClaims) UnmarshalJSON(b []byte) error {
	var dates struct {
		Exp, Iat, Nbf json.RawMessage
	}
	if err := json.Unmarshal(b, &dates); err != nil {
		return err
	}
	for _, d := range []struct {
		name string
		raw  json.RawMessage
	}{{"exp", dates.Exp}, {"iat", dates.Iat}, {"nbf", dates.Nbf}} {
		if len(d.raw) > 0 && d.raw[0] != '-' && (d.raw[0] < '0' || d.raw[0] > '9') && string(d.raw) != "null" {
			return fmt.Errorf("the %s claim is %s, not a number", d.name, d.raw)
		}
	}
	return json.Unmarshal(b, &c.RegisteredClaims)
}

// testHookParseJWT, set by tests only, runs at every full check of a JWT.
var testHookParseJWT func()

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

// compatAuth adapts the authenticator to the vendor packages' interface,
// counting the credentials it refuses.
type compatAuth struct {
	a        *authenticator
	failures prometheus.Counter
}

// AuthenticateUser checks a credential presented on behalf of userID: a
// token of that user with the connect scope (acting as the user is what
// connect allows), or a JWT whose subject is that user.
func (c compatAuth) AuthenticateUser(ctx context.Context, userID, credential string) (membership.User, error) {
	p, err := c.a.authenticate(ctx, credential)
	if err != nil {
		c.failures.Inc()
		return membership.User{}, err
	}
	if p.UserID == "" || p.UserID != userID {
		c.failures.Inc()
		return membership.User{}, fmt.Errorf("%w: credential is not %q's", membership.ErrUnauthorized, userID)
	}
	if !p.Allows(membership.ScopeConnect) {
		c.failures.Inc()
		return membership.User{}, fmt.Errorf("%w: the token lacks the connect scope", membership.ErrUnauthorized)
	}
	u, ok := c.a.store.Index().User(userID)
	if !ok {
		return membership.User{}, membership.ErrUnauthorized
	}
	return u, nil
}

// AuthenticateToken resolves an API token.
func (c compatAuth) AuthenticateToken(ctx context.Context, token string) (membership.Token, error) {
	t, err := c.a.store.Authenticate(ctx, token)
	if err != nil {
		c.failures.Inc()
	}
	return t, err
}

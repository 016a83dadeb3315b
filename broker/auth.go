package broker

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"
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
	parser           *jwt.Parser
	verified         jwtCache
	// fresh holds checks back after a stall of the process until the
	// index caught up (nil: never).
	fresh *freshness
}

func newAuthenticator(store *membership.Store, cfg Config) (*authenticator, error) {
	a := &authenticator{store: store, audience: cfg.JWTAudience, issuer: cfg.JWTIssuer, maxLife: cfg.JWTMaxLifetime}
	a.parser = a.newParser()
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
	a.fresh.wait(ctx)
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

// newParser is the JWT parser of a's rules, made once: a parser's options
// are fixed, and making them cost a connecting client allocations.
func (a *authenticator) newParser() *jwt.Parser {
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
	return jwt.NewParser(opts...)
}

// parseJWT checks raw's signature and claims.
func (a *authenticator) parseJWT(raw string) (verifiedJWT, error) {
	if testHookParseJWT != nil {
		testHookParseJWT()
	}
	var claims strictClaims
	_, err := a.parser.ParseWithClaims(raw, &claims, a.keyFor)
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
// and nbf are JSON numbers (jwt.NumericDate also reads a number sent as a
// string, which no conforming issuer sends), iss, sub and jti strings, aud
// a string or an array of them; a claim named twice is refused. Other
// claims are skipped.
type strictClaims struct{ jwt.RegisteredClaims }

// UnmarshalJSON reads the claims in one pass over their tokens. Reading
// them with encoding/json took three (the dates' kinds, the claims, each
// date again as a json.Number): more than half of a token's check, and
// the deep reflection grew the stack of every connecting client's
// goroutine.
func (c *strictClaims) UnmarshalJSON(b []byte) error {
	dec := jsontext.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return errors.New("the claims are not a JSON object")
	}
	for dec.PeekKind() != '}' {
		tok, err := dec.ReadToken()
		if err != nil {
			return err
		}
		switch name := tok.String(); name {
		case "iss":
			c.Issuer, err = claimString(dec, name)
		case "sub":
			c.Subject, err = claimString(dec, name)
		case "jti":
			c.ID, err = claimString(dec, name)
		case "aud":
			c.Audience, err = claimAudience(dec)
		case "exp":
			c.ExpiresAt, err = claimDate(dec, name)
		case "iat":
			c.IssuedAt, err = claimDate(dec, name)
		case "nbf":
			c.NotBefore, err = claimDate(dec, name)
		default:
			err = dec.SkipValue()
		}
		if err != nil {
			return err
		}
	}
	if _, err := dec.ReadToken(); err != nil { // the object's end
		return err
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return errors.New("the claims are followed by more JSON")
	}
	return nil
}

// claimString reads a string claim.
func claimString(dec *jsontext.Decoder, name string) (string, error) {
	tok, err := dec.ReadToken()
	switch {
	case err != nil:
		return "", err
	case tok.Kind() != '"':
		return "", fmt.Errorf("the %s claim is not a string", name)
	}
	return tok.String(), nil
}

// claimAudience reads aud: a string, an array of strings, or null.
func claimAudience(dec *jsontext.Decoder) (jwt.ClaimStrings, error) {
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, err
	}
	switch tok.Kind() {
	case 'n':
		return nil, nil
	case '"':
		return jwt.ClaimStrings{tok.String()}, nil
	case '[':
	default:
		return nil, errors.New("the aud claim is neither a string nor an array of strings")
	}
	aud := jwt.ClaimStrings{}
	for dec.PeekKind() != ']' {
		tok, err := dec.ReadToken()
		if err != nil {
			return nil, err
		}
		if tok.Kind() != '"' {
			return nil, errors.New("the aud claim holds something other than a string")
		}
		aud = append(aud, tok.String())
	}
	_, err = dec.ReadToken()
	return aud, err
}

// claimDate reads a NumericDate claim: a JSON number of seconds, or null.
func claimDate(dec *jsontext.Decoder, name string) (*jwt.NumericDate, error) {
	tok, err := dec.ReadToken()
	switch {
	case err != nil:
		return nil, err
	case tok.Kind() == 'n':
		return nil, nil
	case tok.Kind() != '0':
		return nil, fmt.Errorf("the %s claim is %s, not a number", name, tok)
	}
	f, err := strconv.ParseFloat(tok.String(), 64)
	if err != nil || math.Abs(f) > 1<<53 {
		return nil, fmt.Errorf("the %s claim %s is out of range", name, tok)
	}
	// As jwt.NumericDate reads one, the fraction kept to the nanosecond.
	whole, frac := math.Modf(f)
	return jwt.NewNumericDate(time.Unix(int64(whole), int64(frac*1e9))), nil
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

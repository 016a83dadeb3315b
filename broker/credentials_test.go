package broker_test

import (
	"encoding/base64"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/presenced/presenced/broker"
)

// signJWT signs an HS256 token with the test secret.
func signJWT(t *testing.T, claims jwt.RegisteredClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(testJWTSecret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestJWTClaimsChecked: with --jwt-audience and --jwt-issuer a user JWT
// must name them, and no JWT may live longer than --jwt-max-lifetime.
func TestJWTClaimsChecked(t *testing.T) {
	s := startServer(t, "", func(c *broker.Config) {
		c.JWTAudience, c.JWTIssuer, c.JWTMaxLifetime = "presenced", "https://id.example", time.Hour
	})
	seedTeam(t, s)
	now := time.Now()
	good := jwt.RegisteredClaims{Subject: "a", Audience: jwt.ClaimStrings{"presenced"}, Issuer: "https://id.example",
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(30 * time.Minute))}
	tests := []struct {
		name   string
		change func(*jwt.RegisteredClaims)
		want   int
	}{
		{"all good", func(*jwt.RegisteredClaims) {}, http.StatusOK},
		{"another audience", func(c *jwt.RegisteredClaims) { c.Audience = jwt.ClaimStrings{"other"} }, http.StatusUnauthorized},
		{"no audience", func(c *jwt.RegisteredClaims) { c.Audience = nil }, http.StatusUnauthorized},
		{"another issuer", func(c *jwt.RegisteredClaims) { c.Issuer = "https://evil.example" }, http.StatusUnauthorized},
		{"lives too long", func(c *jwt.RegisteredClaims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(48 * time.Hour)) }, http.StatusUnauthorized},
		{"too long without iat", func(c *jwt.RegisteredClaims) {
			c.IssuedAt, c.ExpiresAt = nil, jwt.NewNumericDate(now.Add(2*time.Hour))
		}, http.StatusUnauthorized},
		// An iat in the future made a year's token look an hour long.
		{"issued in the future", func(c *jwt.RegisteredClaims) {
			c.ExpiresAt = jwt.NewNumericDate(now.Add(365 * 24 * time.Hour))
			c.IssuedAt = jwt.NewNumericDate(c.ExpiresAt.Add(-30 * time.Minute))
		}, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.change(&c)
			if st := rcGet(t, s, "a", signJWT(t, c), "/api/v1/users.getStatus", nil); st != tt.want {
				t.Fatalf("status %d, want %d", st, tt.want)
			}
		})
	}
}

// TestMetricsToken: with --metrics-token, /metrics needs it as a bearer.
func TestMetricsToken(t *testing.T) {
	s := startServer(t, "", func(c *broker.Config) { c.MetricsToken = "metrics-secret-0123456789" })
	for _, tt := range []struct {
		token string
		want  int
	}{{"", http.StatusUnauthorized}, {"wrong", http.StatusUnauthorized}, {"metrics-secret-0123456789", http.StatusOK}} {
		req, _ := http.NewRequest("GET", s.URL+"/metrics", nil)
		if tt.token != "" {
			req.Header.Set("Authorization", "Bearer "+tt.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Fatalf("/metrics with %q: %d, want %d", tt.token, resp.StatusCode, tt.want)
		}
	}
}

// TestSecretFiles: secrets can come from files, so that they stay out of
// process lists; a file and a flag for the same secret exclude each other.
func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "admin")
	if err := os.WriteFile(file, []byte("admin-token-from-a-file-0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	parse := func(args ...string) (broker.Config, error) {
		fs := flag.NewFlagSet("presenced", flag.ContinueOnError)
		build := broker.Flags(fs)
		if err := fs.Parse(args); err != nil {
			return broker.Config{}, err
		}
		return build()
	}
	cfg, err := parse("--admin-token-file", file)
	if err != nil || cfg.AdminToken != "admin-token-from-a-file-0123" {
		t.Fatalf("--admin-token-file: %q %v", cfg.AdminToken, err)
	}
	if _, err := parse("--admin-token-file", file, "--admin-token", "x"); err == nil || !strings.Contains(err.Error(), "exclude") {
		t.Fatalf("both: %v", err)
	}
	if _, err := parse("--metrics-token-file", filepath.Join(dir, "missing")); err == nil {
		t.Fatal("a missing file accepted")
	}
}

// TestJWTDatesMustBeNumbers: RFC 7519 makes exp, iat and nbf JSON numbers
// (NumericDate). A date sent as a string is a token this server was not
// meant to read: it is refused, whatever its signature, like any other
// malformed claim.
func TestJWTDatesMustBeNumbers(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	now := time.Now()
	exp, iat := now.Add(30*time.Minute).Unix(), now.Unix()
	tests := []struct {
		name   string
		claims map[string]any
		want   int
	}{
		{"numbers", map[string]any{"sub": "a", "exp": exp, "iat": iat}, http.StatusOK},
		{"a fractional exp", map[string]any{"sub": "a", "exp": float64(exp) + 0.5}, http.StatusOK},
		{"exp as a string", map[string]any{"sub": "a", "exp": strconv.FormatInt(exp, 10)}, http.StatusUnauthorized},
		{"iat as a string", map[string]any{"sub": "a", "exp": exp, "iat": strconv.FormatInt(iat, 10)}, http.StatusUnauthorized},
		{"nbf as a string", map[string]any{"sub": "a", "exp": exp, "nbf": strconv.FormatInt(iat, 10)}, http.StatusUnauthorized},
		{"exp as null", map[string]any{"sub": "a", "exp": nil}, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(tt.claims)).SignedString([]byte(testJWTSecret))
			if err != nil {
				t.Fatal(err)
			}
			if st := rcGet(t, s, "a", tok, "/api/v1/users.getStatus", nil); st != tt.want {
				t.Fatalf("users.getStatus: %d, want %d", st, tt.want)
			}
			_, resp, err := dialWS(t, s, tok, nil)
			switch {
			case tt.want == http.StatusOK && err != nil:
				t.Fatalf("WebSocket: %v", err)
			case tt.want != http.StatusOK && (err == nil || resp == nil || resp.StatusCode != tt.want):
				t.Fatalf("WebSocket: %v %v, want %d", resp, err, tt.want)
			}
		})
	}
}

// TestJWTClaimsReadStrictly: the claims are read in one pass of their own
// (see strictClaims). A claim named twice means one user to a reader that
// keeps the first and another to one that keeps the last: refused. So is
// a registered claim of the wrong type, or a date no clock reaches; claims
// of an issuer's own, of any shape, are skipped.
func TestJWTClaimsReadStrictly(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	exp := time.Now().Add(30 * time.Minute).Unix()
	tests := []struct {
		name   string
		claims string
		want   int
	}{
		{"plain", `{"sub":"a","exp":%d}`, http.StatusOK},
		{"claims of the issuer's own", `{"sub":"a","exp":%d,"name":{"given":["A",1,null,true]},"jti":"j1","aud":["x","y"],"iss":"i"}`, http.StatusOK},
		{"sub named twice", `{"sub":"nobody","exp":%d,"sub":"a"}`, http.StatusUnauthorized},
		{"sub a number", `{"sub":1,"exp":%d}`, http.StatusUnauthorized},
		{"aud holding a number", `{"sub":"a","exp":%d,"aud":["x",1]}`, http.StatusUnauthorized},
		{"aud an object", `{"sub":"a","exp":%d,"aud":{}}`, http.StatusUnauthorized},
		{"nbf past any clock", `{"sub":"a","exp":%d,"nbf":1e300}`, http.StatusUnauthorized},
		{"the claims an array", `[{"sub":"a","exp":%d}]`, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := signRawJWT(t, fmt.Sprintf(tt.claims, exp))
			if st := rcGet(t, s, "a", tok, "/api/v1/users.getStatus", nil); st != tt.want {
				t.Fatalf("users.getStatus: %d, want %d", st, tt.want)
			}
		})
	}
}

// signRawJWT signs claims, a JSON text as it is, with the test secret.
func signRawJWT(t *testing.T, claims string) string {
	t.Helper()
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString([]byte(claims))
	sig, err := jwt.SigningMethodHS256.Sign(signing, []byte(testJWTSecret))
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + enc.EncodeToString(sig)
}

package broker

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestJWTCacheExpires(t *testing.T) {
	var c jwtCache
	exp := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	c.put(keyOf("tok"), verifiedJWT{subject: "a", expires: exp})
	if v, ok, expired := c.get(keyOf("tok"), exp.Add(jwtLeeway-time.Millisecond)); !ok || expired || v.subject != "a" {
		t.Fatalf("within the leeway: %+v %v %v", v, ok, expired)
	}
	if _, ok, expired := c.get(keyOf("tok"), exp.Add(jwtLeeway+time.Millisecond)); ok || !expired {
		t.Fatalf("past the leeway: ok %v, expired %v", ok, expired)
	}
	if _, ok, expired := c.get(keyOf("tok"), exp); ok || expired {
		t.Fatal("an expired token stayed cached")
	}
	if _, ok, _ := c.get(keyOf("other"), exp); ok {
		t.Fatal("a token never verified was found")
	}
	for i := range jwtCacheMax + 1 {
		c.put(keyOf(string(rune(i))), verifiedJWT{})
	}
	if len(c.m) > jwtCacheMax {
		t.Fatalf("%d tokens kept, at most %d", len(c.m), jwtCacheMax)
	}
}

// BenchmarkJWTCheck compares the full check of a user JWT (HS256) with the
// cached verdict a reconnecting client's token gets.
func BenchmarkJWTCheck(b *testing.B) {
	a := &authenticator{secret: []byte("bench-jwt-secret-bench-jwt-secret-0123")}
	a.parser = a.newParser()
	raw, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject: "pb-u000123", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour)), IssuedAt: jwt.NewNumericDate(time.Now()),
	}).SignedString(a.secret)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("parse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := a.parseJWT(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		v, err := a.parseJWT(raw)
		if err != nil {
			b.Fatal(err)
		}
		a.verified.put(keyOf(raw), v)
		b.ReportAllocs()
		for b.Loop() {
			if _, ok, _ := a.verified.get(keyOf(raw), time.Now()); !ok { // the hash counts, as in verifyJWT
				b.Fatal("not cached")
			}
		}
	})
}

package broker

import (
	"crypto/sha256"
	"sync"
	"time"
)

// jwtCache remembers the JWTs whose signature and claims were verified, by
// a hash of the token: a client that connects again with the same token (a
// reconnect storm is every client at once) does not pay for the signature
// check and the parse again, about 40 µs of CPU on one core. It keeps only
// what the token itself decides, its subject and expiry; the expiry is
// checked again at every use, and the user's state (deactivated, deleted)
// is checked at every use after the cache, as before it. A JWT is never
// revoked by itself, so nothing else can change its verdict. Only a
// successful verification is kept.
type jwtCache struct {
	mu sync.Mutex
	// mu guards the following field.
	m map[jwtKey]verifiedJWT
}

type verifiedJWT struct {
	subject string
	expires time.Time
}

const (
	// jwtCacheMax bounds the tokens kept; past it the cache starts over.
	jwtCacheMax = 1 << 16
	// jwtLeeway is the clock skew allowed around a JWT's times, in the
	// parse and at a cached token's use alike.
	jwtLeeway = 5 * time.Second
)

// jwtKey is what the cache knows a token by.
type jwtKey = [sha256.Size]byte

func keyOf(raw string) jwtKey { return sha256.Sum256([]byte(raw)) }

// get returns the cached verdict of the token k; expired is set when it
// was verified but has expired since, and the entry is dropped.
func (c *jwtCache) get(k jwtKey, now time.Time) (v verifiedJWT, ok, expired bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok = c.m[k]
	if ok && now.After(v.expires.Add(jwtLeeway)) {
		delete(c.m, k)
		return verifiedJWT{}, false, true
	}
	return v, ok, false
}

func (c *jwtCache) put(k jwtKey, v verifiedJWT) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= jwtCacheMax {
		c.m = make(map[jwtKey]verifiedJWT)
	}
	c.m[k] = v
}

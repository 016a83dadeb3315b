package webhook

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/presenced/presenced/membership"
)

// Limits of a registration.
const (
	MaxURLLen      = 2048 // bytes of Webhook.URL
	MinSecretLen   = 16   // characters of a caller-chosen Webhook.Secret
	MaxSecretLen   = 256
	MaxUsersFilter = 1000 // entries of Webhook.Users
)

// Webhook is a registered HTTP endpoint that receives batches of presence
// changes. It is stored as JSON in the webhooks bucket under its ID,
// secret included: the bucket is as sensitive as the secrets.
type Webhook struct {
	// ID is generated at creation: "wh_" and 20 hex digits.
	ID string `json:"id"`
	// URL is the absolute http or https URL the batches are POSTed to.
	URL string `json:"url"`
	// Secret keys the HMAC-SHA256 signature of every body. Generated when
	// not given; the API shows it only in the answer to its creation.
	Secret string `json:"secret"`
	// Users restricts the changes sent to those of these user ids; empty
	// means every user.
	Users []string `json:"users,omitempty"`
	// CreatedAt is when the webhook was registered.
	CreatedAt time.Time `json:"createdAt"`
	// Disabled webhooks are kept but receive nothing: the changes made
	// while a webhook is disabled are skipped, not delivered later.
	Disabled bool `json:"disabled,omitempty"`
	// EnabledAt is when the webhook was last enabled after being disabled
	// (zero: enabled since its creation). Changes older than it are
	// skipped.
	EnabledAt time.Time `json:"enabledAt,omitzero"`
	// Revision is the bucket revision this version was stored at; it is
	// not stored itself. Nodes compare it to decide which version of a
	// registration is the newer.
	Revision uint64 `json:"-"`
}

// since is the time before which changes are not for w.
func (w Webhook) since() time.Time {
	if w.EnabledAt.After(w.CreatedAt) {
		return w.EnabledAt
	}
	return w.CreatedAt
}

var idPattern = regexp.MustCompile(`^wh_[0-9a-f]{20}$`)

// ValidID reports whether id has the form of a generated webhook id.
func ValidID(id string) bool { return idPattern.MatchString(id) }

func newID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return "wh_" + hex.EncodeToString(b[:])
}

// NewSecret returns a random secret of 256 bits, as a webhook gets when
// none is given.
func NewSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return "whsec_" + base64.RawURLEncoding.EncodeToString(b[:])
}

// validateURL checks that raw is an absolute http(s) URL without
// credentials or fragment, and returns it normalized.
func validateURL(raw string) (string, error) {
	bad := func(msg string) error { return &ValidationError{Field: "url", Message: msg} }
	if raw == "" {
		return "", bad("is required")
	}
	if len(raw) > MaxURLLen {
		return "", bad("longer than " + strconv.Itoa(MaxURLLen) + " bytes")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", bad("not a URL")
	}
	u.Scheme = strings.ToLower(u.Scheme)
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", bad("scheme must be http or https")
	case u.Opaque != "" || u.Hostname() == "":
		return "", bad("must be absolute, with a host")
	case u.User != nil:
		return "", bad("must not carry credentials (sign with the secret instead)")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return "", bad("must not have a fragment")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", bad("invalid port")
		}
	}
	return u.String(), nil
}

func validateSecret(s string) error {
	n := len([]rune(s))
	if n < MinSecretLen || n > MaxSecretLen {
		return &ValidationError{Field: "secret", Message: "must be " + strconv.Itoa(MinSecretLen) + " to " + strconv.Itoa(MaxSecretLen) + " characters"}
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return &ValidationError{Field: "secret", Message: "must not contain spaces or control characters"}
		}
	}
	return nil
}

// normalizeUsers validates a users filter and drops duplicates, keeping
// the first occurrence's order.
func normalizeUsers(users []string) ([]string, error) {
	if len(users) > MaxUsersFilter {
		return nil, &ValidationError{Field: "users", Message: "more than " + strconv.Itoa(MaxUsersFilter) + " entries"}
	}
	if len(users) == 0 {
		return nil, nil
	}
	seen := make(map[string]bool, len(users))
	out := make([]string, 0, len(users))
	for _, u := range users {
		if !membership.ValidID(u) {
			return nil, &ValidationError{Field: "users", Message: strconv.Quote(u) + " is not a valid user id"}
		}
		if !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	return out, nil
}

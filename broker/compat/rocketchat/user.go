package rocketchat

import (
	"crypto/sha256"
	"encoding/base64"

	"github.com/presenced/presenced/membership"
)

// avatarETag stands in for upstream's avatarETag, which changes whenever the
// avatar does: presenced keeps an avatar URL, so the tag is derived from it.
// Clients only compare it and append it to avatar URLs.
func avatarETag(u membership.User) string {
	if u.AvatarURL == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(u.AvatarURL))
	return base64.RawURLEncoding.EncodeToString(sum[:])[:17]
}

package membership

import (
	"regexp"
	"strings"
	"testing"
)

// ValidID accepts exactly the ids of 1 to MaxIDLen characters of
// [A-Za-z0-9_-].
func TestValidID(t *testing.T) {
	pattern := regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	ids := []string{"", "a", "A-z_09", "a b", "a.b", "a*", "a>", "é", "a\x00", "\xff", "-", "_",
		strings.Repeat("x", MaxIDLen), strings.Repeat("x", MaxIDLen+1)}
	for c := range 256 {
		ids = append(ids, "id"+string(rune(c)), string([]byte{byte(c)}))
	}
	for _, id := range ids {
		if got, want := ValidID(id), pattern.MatchString(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
}

func BenchmarkValidID(b *testing.B) {
	for b.Loop() {
		ValidID("user-000123_x")
	}
}

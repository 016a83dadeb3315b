package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/presenced/presenced/broker/webhook"
)

func TestSignMatchesHMAC(t *testing.T) {
	body := []byte(`{"webhook":"wh_0","batch":1,"changes":[]}`)
	m := hmac.New(sha256.New, []byte("s3cret-s3cret-s3cret"))
	m.Write(body)
	want := "sha256=" + hex.EncodeToString(m.Sum(nil))
	if got := webhook.Sign("s3cret-s3cret-s3cret", body); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	const secret = "whsec_0123456789abcdef"
	body := []byte(`{"webhook":"wh_0","batch":1,"changes":[{"user":"alice","status":"online","rev":3}]}`)
	good := webhook.Sign(secret, body)
	tests := []struct {
		name   string
		secret string
		body   []byte
		header string
		want   bool
	}{
		{"valid", secret, body, good, true},
		{"upper-case hex", secret, body, "sha256=" + strings.ToUpper(strings.TrimPrefix(good, "sha256=")), true},
		{"wrong secret", "whsec_fedcba9876543210", body, good, false},
		{"tampered body", secret, append([]byte(nil), append(body[:len(body)-1:len(body)-1], ' ', '}')...), good, false},
		{"no prefix", secret, body, strings.TrimPrefix(good, "sha256="), false},
		{"other algorithm", secret, body, "sha1=" + strings.TrimPrefix(good, "sha256="), false},
		{"not hex", secret, body, "sha256=zz" + good[9:], false},
		{"truncated", secret, body, good[:len(good)-2], false},
		{"empty header", secret, body, "", false},
		{"empty secret", "", body, webhook.Sign("", body), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := webhook.Verify(tt.secret, tt.body, tt.header); got != tt.want {
				t.Fatalf("Verify = %v, want %v", got, tt.want)
			}
		})
	}
}

func ExampleVerify() {
	secret := "whsec_example-secret-0001"
	body := []byte(`{"webhook":"wh_0123456789abcdef0123","node":"n1","batch":1,"changes":[]}`)
	header := webhook.Sign(secret, body) // what the sender puts in X-Presenced-Signature

	fmt.Println(webhook.Verify(secret, body, header))
	fmt.Println(webhook.Verify(secret, []byte(`{"forged":true}`), header))
	// Output:
	// true
	// false
}

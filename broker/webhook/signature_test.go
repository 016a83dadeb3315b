package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/broker/webhook"
)

func TestSignMatchesHMAC(t *testing.T) {
	body := []byte(`{"webhook":"wh_0","batch":"1-1","changes":[]}`)
	m := hmac.New(sha256.New, []byte("s3cret-s3cret-s3cret"))
	m.Write([]byte("1700000000." + string(body)))
	want := "sha256=" + hex.EncodeToString(m.Sum(nil))
	if got := webhook.Sign("s3cret-s3cret-s3cret", 1700000000, body); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	const secret = "whsec_0123456789abcdef"
	body := []byte(`{"webhook":"wh_0","batch":"3-3","changes":[{"user":"alice","status":"online","rev":3}]}`)
	now := time.Now().Unix()
	ts := strconv.FormatInt(now, 10)
	good := webhook.Sign(secret, now, body)
	old := now - 600
	tests := []struct {
		name      string
		secret    string
		body      []byte
		timestamp string
		header    string
		tolerance time.Duration
		want      bool
	}{
		{"valid", secret, body, ts, good, 0, true},
		{"upper-case hex", secret, body, ts, "sha256=" + strings.ToUpper(strings.TrimPrefix(good, "sha256=")), 0, true},
		{"wrong secret", "whsec_fedcba9876543210", body, ts, good, 0, false},
		{"tampered body", secret, append([]byte(nil), append(body[:len(body)-1:len(body)-1], ' ', '}')...), ts, good, 0, false},
		{"other timestamp, same signature", secret, body, strconv.FormatInt(now-1, 10), good, 0, false},
		{"timestamp spelled otherwise", secret, body, "+" + ts, good, 0, false},
		{"replayed after the tolerance", secret, body, strconv.FormatInt(old, 10), webhook.Sign(secret, old, body), 0, false},
		{"old but within a wider tolerance", secret, body, strconv.FormatInt(old, 10), webhook.Sign(secret, old, body), time.Hour, true},
		{"from the future", secret, body, strconv.FormatInt(now+600, 10), webhook.Sign(secret, now+600, body), 0, false},
		{"no timestamp", secret, body, "", good, 0, false},
		{"no prefix", secret, body, ts, strings.TrimPrefix(good, "sha256="), 0, false},
		{"other algorithm", secret, body, ts, "sha1=" + strings.TrimPrefix(good, "sha256="), 0, false},
		{"not hex", secret, body, ts, "sha256=zz" + good[9:], 0, false},
		{"truncated", secret, body, ts, good[:len(good)-2], 0, false},
		{"empty header", secret, body, ts, "", 0, false},
		{"empty secret", "", body, ts, webhook.Sign("", now, body), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := webhook.Verify(tt.secret, tt.body, tt.timestamp, tt.header, tt.tolerance); got != tt.want {
				t.Fatalf("Verify = %v, want %v", got, tt.want)
			}
		})
	}
}

func ExampleVerify() {
	secret := "whsec_example-secret-0001"
	body := []byte(`{"webhook":"wh_0123456789abcdef0123","batch":"1-1","changes":[]}`)
	now := time.Now().Unix()
	// What the sender puts in X-Presenced-Timestamp and X-Presenced-Signature:
	timestamp, signature := strconv.FormatInt(now, 10), webhook.Sign(secret, now, body)

	fmt.Println(webhook.Verify(secret, body, timestamp, signature, 5*time.Minute))
	fmt.Println(webhook.Verify(secret, []byte(`{"forged":true}`), timestamp, signature, 5*time.Minute))
	// Output:
	// true
	// false
}

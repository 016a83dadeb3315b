package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Headers of a delivery.
const (
	// HeaderSignature carries "sha256=" and the hex HMAC-SHA256 of the body
	// keyed with the webhook's secret.
	HeaderSignature = "X-Presenced-Signature"
	// HeaderTimestamp is the Unix time, in seconds, of the attempt.
	HeaderTimestamp = "X-Presenced-Timestamp"
	// HeaderBatch is the batch number, the same as the body's "batch".
	HeaderBatch = "X-Presenced-Batch"
	// HeaderWebhook is the webhook id, the same as the body's "webhook".
	HeaderWebhook = "X-Presenced-Webhook"
	// HeaderNode names the sending node, the same as the body's "node".
	HeaderNode = "X-Presenced-Node"
)

const signaturePrefix = "sha256="

// Sign returns the value of the X-Presenced-Signature header for body:
// "sha256=" followed by the lower-case hex HMAC-SHA256 of body keyed with
// secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return signaturePrefix + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether header, the X-Presenced-Signature of a delivery,
// is the signature of body with secret. It compares in constant time. A
// receiver must verify the raw body bytes, before decoding them.
func Verify(secret string, body []byte, header string) bool {
	if secret == "" || !strings.HasPrefix(header, signaturePrefix) {
		return false
	}
	got, err := hex.DecodeString(header[len(signaturePrefix):])
	if err != nil || len(got) != sha256.Size {
		return false
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}

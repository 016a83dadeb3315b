package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// Headers of a delivery.
const (
	// HeaderSignature carries "sha256=" and the hex HMAC-SHA256, keyed with
	// the webhook's secret, of the timestamp, a dot and the body (see Sign).
	HeaderSignature = "X-Presenced-Signature"
	// HeaderTimestamp is the Unix time, in seconds, of the attempt. It is
	// signed with the body, so a receiver that checks its age (Verify)
	// refuses a recorded delivery played again later.
	HeaderTimestamp = "X-Presenced-Timestamp"
	// HeaderBatch is the batch id, the same as the body's "batch": a
	// redelivery of a batch carries the same id.
	HeaderBatch = "X-Presenced-Batch"
	// HeaderWebhook is the webhook id, the same as the body's "webhook".
	HeaderWebhook = "X-Presenced-Webhook"
	// HeaderNode names the sending node.
	HeaderNode = "X-Presenced-Node"
)

// DefaultTolerance is how far from the receiver's clock Verify accepts a
// delivery's timestamp when given no tolerance.
const DefaultTolerance = 5 * time.Minute

const signaturePrefix = "sha256="

// Sign returns the value of the X-Presenced-Signature header of a
// delivery of body with the X-Presenced-Timestamp timestamp (Unix
// seconds): "sha256=" followed by the lower-case hex HMAC-SHA256, keyed
// with secret, of the decimal timestamp, a "." and body.
func Sign(secret string, timestamp int64, body []byte) string {
	return signaturePrefix + hex.EncodeToString(mac(secret, strconv.FormatInt(timestamp, 10), body))
}

func mac(secret, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify reports whether signature, the X-Presenced-Signature of a
// delivery, signs body with secret at timestamp, its X-Presenced-Timestamp,
// and whether that timestamp is within tolerance of the local clock
// (DefaultTolerance when tolerance <= 0). It compares in constant time. A
// receiver must verify the raw body bytes before decoding them, and keep
// the batch ids it accepted within the tolerance to drop a replay made
// inside it.
func Verify(secret string, body []byte, timestamp, signature string, tolerance time.Duration) bool {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	if secret == "" || !strings.HasPrefix(signature, signaturePrefix) {
		return false
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil || strconv.FormatInt(ts, 10) != timestamp {
		return false // one spelling only: the signed bytes are the header's
	}
	if age := time.Since(time.Unix(ts, 0)); age > tolerance || age < -tolerance {
		return false
	}
	got, err := hex.DecodeString(signature[len(signaturePrefix):])
	if err != nil || len(got) != sha256.Size {
		return false
	}
	return hmac.Equal(got, mac(secret, timestamp, body))
}

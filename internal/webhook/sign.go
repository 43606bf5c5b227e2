// Package webhook delivers the key service's events to the endpoints an
// organization registered, signed as the Standard Webhooks specification
// says (standardwebhooks.com): a webhook-id that stays the same on every
// attempt, a webhook-timestamp in Unix seconds and a webhook-signature of
// space-separated "v1,<base64 HMAC-SHA256 of id.timestamp.body>", one per
// secret that signs (two during a rotation). It dials only the addresses
// its Policy allows, checked at connect time, and retries with backoff.
// It knows nothing of the store: the key service gives it a Queue.
package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix starts every signing secret.
const SecretPrefix = "whsec_"

// secretLen is a new secret's length in bytes: the specification asks for
// 24 to 64.
const secretLen = 32

// NewSecret returns a new signing secret: "whsec_" and the base64 of 32
// random bytes.
func NewSecret() string {
	b := make([]byte, secretLen)
	rand.Read(b)
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// SecretBytes returns the key bytes of a secret NewSecret made.
func SecretBytes(secret string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	if err != nil || !strings.HasPrefix(secret, SecretPrefix) || len(b) < 24 || len(b) > 64 {
		return nil, errors.New("not a webhook signing secret")
	}
	return b, nil
}

// Headers of a Standard Webhooks request.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// Signature returns the webhook-signature header of a message: one
// "v1,<signature>" per key, space-separated.
func Signature(id string, ts time.Time, body []byte, keys [][]byte) string {
	sigs := make([]string, 0, len(keys))
	for _, k := range keys {
		m := hmac.New(sha256.New, k)
		m.Write([]byte(id + "." + strconv.FormatInt(ts.Unix(), 10) + "."))
		m.Write(body)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)))
	}
	return strings.Join(sigs, " ")
}

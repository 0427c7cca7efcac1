// Package events delivers callrelay's events (call.missed, call.completed, voicemail.created,
// voicemail.transcribed) to webhook endpoints, signed per the Standard Webhooks specification
// (https://www.standardwebhooks.com), by durable jobs that retry for about a day. See
// docs/events.md.
package events

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix starts a Standard Webhooks secret: whsec_ and the key in base64.
const SecretPrefix = "whsec_"

// Secret key sizes the specification asks for.
const (
	minKey = 24
	maxKey = 64
)

// Headers of a signed request.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// Signer signs events with one secret.
type Signer struct{ key []byte }

// ParseSecret reads a whsec_ secret (CALLRELAY_EVENT_SECRET). The error never repeats it.
func ParseSecret(s string) (*Signer, error) {
	b64, ok := strings.CutPrefix(strings.TrimSpace(s), SecretPrefix)
	if !ok {
		return nil, errors.New("must start with " + SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, errors.New("must be " + SecretPrefix + " and the key in standard base64")
	}
	if len(key) < minKey || len(key) > maxKey {
		return nil, fmt.Errorf("the key must be %d to %d bytes (it is %d); e.g. %s$(head -c 32 /dev/urandom | base64)", minKey, maxKey, len(key), SecretPrefix)
	}
	return &Signer{key: key}, nil
}

// Sign returns the webhook-signature value: v1, and the base64 HMAC-SHA256 of
// "id.timestamp.body" with the timestamp in Unix seconds.
func (s *Signer) Sign(id string, at time.Time, body []byte) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(id + "." + strconv.FormatInt(at.Unix(), 10) + "."))
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

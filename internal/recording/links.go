package recording

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/callrelay/callrelay/internal/callrelay"
)

// DefaultTTL is how long an emailed audio link works.
const DefaultTTL = 30 * 24 * time.Hour

// linkDomain prefixes every MAC'd message: a link key signs audio links and nothing else, and a
// MAC computed for another purpose with the same key can never pass as one.
const linkDomain = "callrelay-audio-link"

var (
	// ErrLinkExpired: the link was signed by us but its expiry has passed.
	ErrLinkExpired = errors.New("recording: audio link expired")
	// ErrLinkInvalid: the link is malformed, tampered with (id, expires or sig), or signed by a
	// key no longer (or never) accepted.
	ErrLinkInvalid = errors.New("recording: audio link invalid")
)

// Links signs and checks the public audio links GET /voicemails/{id}/audio?expires=…&sig=….
// It is safe for concurrent use.
type Links struct {
	base string // public URL without trailing slash, query or fragment
	keys [][]byte
	ttl  time.Duration
	now  func() time.Time
}

// NewLinks returns the link signer for publicURL (CALLRELAY_PUBLIC_URL). secrets is
// ParseSecrets(CALLRELAY_LINK_SECRET): links are signed with the first and accepted when signed
// with any. To rotate, put the new secret first and keep the old one after it for at least the
// TTL: an old key stays useful until the last link it signed expires, then drop it. Empty secrets
// are ignored; with none at all the links are signed with a random per-process key (they stop
// working on restart and on other replicas) rather than with a guessable one. ttl <= 0 means
// DefaultTTL; a nil now means callrelay.SystemClock.
func NewLinks(publicURL *url.URL, secrets []string, ttl time.Duration, now func() time.Time) *Links {
	l := &Links{ttl: ttl, now: now}
	if publicURL != nil {
		u := *publicURL
		u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = "", false, "", ""
		l.base = strings.TrimRight(u.String(), "/")
	}
	if l.ttl <= 0 {
		l.ttl = DefaultTTL
	}
	if l.now == nil {
		l.now = callrelay.SystemClock
	}
	for _, s := range secrets {
		if s != "" {
			l.keys = append(l.keys, []byte(s))
		}
	}
	if len(l.keys) == 0 {
		k := make([]byte, 32)
		rand.Read(k) // never fails (crypto/rand: it crashes the program instead)
		l.keys = [][]byte{k}
	}
	return l
}

// ParseSecrets reads CALLRELAY_LINK_SECRET: a comma-separated list of secrets, the signing one
// first, then the previous ones still accepted ("new,old1,old2"). Spaces around each are
// trimmed; empty entries and repeats are dropped. A secret therefore cannot contain a comma or
// begin or end with a space.
func ParseSecrets(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" || slices.Contains(out, p) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// URL returns the public link to voicemail voicemailID's audio, expiring after the TTL:
// publicURL/voicemails/{id}/audio?expires=<unix seconds>&sig=<unpadded base64url HMAC-SHA256>.
func (l *Links) URL(voicemailID string) string {
	expires := strconv.FormatInt(l.now().Add(l.ttl).Unix(), 10)
	q := url.Values{"expires": {expires}, "sig": {l.sign(l.keys[0], voicemailID, expires)}}
	return l.base + "/voicemails/" + url.PathEscape(voicemailID) + "/audio?" + q.Encode()
}

// Verify checks the link's parameters as received: the path's id and the expires and sig query
// values. nil when a current or previous key signed exactly this id and expiry and it has not
// passed; ErrLinkExpired when it has; ErrLinkInvalid for anything else. The signature is checked
// before the expiry, so a tampered link says invalid, never expired.
func (l *Links) Verify(voicemailID, expires, sig string) error {
	exp, ok := parseExpires(expires)
	if !ok || voicemailID == "" || len(sig) != base64.RawURLEncoding.EncodedLen(sha256.Size) {
		return ErrLinkInvalid
	}
	valid := false
	for _, k := range l.keys {
		// Compare the encoded forms: base64 decoding tolerates non-zero trailing bits, so two
		// sig strings could decode alike; the one we produce is the only one accepted.
		if hmac.Equal([]byte(sig), []byte(l.sign(k, voicemailID, expires))) {
			valid = true
		}
	}
	if !valid {
		return ErrLinkInvalid
	}
	if !l.now().Before(time.Unix(exp, 0)) {
		return ErrLinkExpired
	}
	return nil
}

// parseExpires accepts the canonical decimal form only (what URL writes): digits, no sign, no
// leading zero, so that one expiry has exactly one signed spelling.
func parseExpires(s string) (int64, bool) {
	if s == "" || len(s) > 19 || s[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// sign MACs linkDomain NUL id NUL expires. expires is digits only, so the last NUL ends the id
// whatever the id contains: ("1", "23") and ("12", "3") are different messages.
func (l *Links) sign(key []byte, voicemailID, expires string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(linkDomain))
	m.Write([]byte{0})
	m.Write([]byte(voicemailID))
	m.Write([]byte{0})
	m.Write([]byte(expires))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

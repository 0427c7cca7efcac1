package recording

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ownerDomain prefixes every owner token's MAC: the link keys sign audio links and owner
// tokens, and neither can pass as the other.
const ownerDomain = "callrelay-owner-link"

// OwnerToken is the owner's part of an inbox link: who (their email) and until when, signed.
// It opens the inbox pages of the numbers whose owner is that email, and nothing else.
type OwnerToken struct {
	Owner   string // the owner's email, base64url
	Expires string // unix seconds
	Sig     string
}

// Query is the token as the inbox's query parameters.
func (t OwnerToken) Query() url.Values {
	return url.Values{"owner": {t.Owner}, "expires": {t.Expires}, "sig": {t.Sig}}
}

// OwnerTokenFrom reads a token from an inbox URL's query.
func OwnerTokenFrom(q url.Values) OwnerToken {
	return OwnerToken{Owner: q.Get("owner"), Expires: q.Get("expires"), Sig: q.Get("sig")}
}

// SignOwner returns a token for email, expiring after the links' TTL, signed with the first
// key.
func (l *Links) SignOwner(email string) OwnerToken {
	t := OwnerToken{
		Owner:   base64.RawURLEncoding.EncodeToString([]byte(strings.ToLower(email))),
		Expires: strconv.FormatInt(l.now().Add(l.ttl).Unix(), 10),
	}
	t.Sig = l.signOwner(l.keys[0], t.Owner, t.Expires)
	return t
}

// OwnerPageURL is the voicemail email's button: the inbox page of voicemail id, for its
// owner.
func (l *Links) OwnerPageURL(email string, voicemailID int64) string {
	return l.base + "/inbox/voicemails/" + strconv.FormatInt(voicemailID, 10) + "?" + l.SignOwner(email).Query().Encode()
}

// VerifyOwner checks a token as received and returns the owner's email: ErrLinkInvalid unless a
// current or previous key signed exactly this owner and expiry, ErrLinkExpired when that has
// passed. Like Verify, the signature is checked first.
func (l *Links) VerifyOwner(t OwnerToken) (string, error) {
	exp, ok := parseExpires(t.Expires)
	if !ok || t.Owner == "" || len(t.Owner) > 400 || len(t.Sig) != base64.RawURLEncoding.EncodedLen(sha256.Size) {
		return "", ErrLinkInvalid
	}
	valid := false
	for _, k := range l.keys {
		if hmac.Equal([]byte(t.Sig), []byte(l.signOwner(k, t.Owner, t.Expires))) {
			valid = true
		}
	}
	if !valid {
		return "", ErrLinkInvalid
	}
	email, err := base64.RawURLEncoding.DecodeString(t.Owner)
	if err != nil {
		return "", ErrLinkInvalid
	}
	if !l.now().Before(time.Unix(exp, 0)) {
		return string(email), ErrLinkExpired
	}
	return string(email), nil
}

// signOwner MACs ownerDomain NUL owner NUL expires; owner is base64url, so it has no NUL.
func (l *Links) signOwner(key []byte, owner, expires string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(ownerDomain))
	m.Write([]byte{0})
	m.Write([]byte(owner))
	m.Write([]byte{0})
	m.Write([]byte(expires))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

package recording_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callrelay/callrelay/internal/clocktest"
	"github.com/callrelay/callrelay/internal/recording"
)

var t0 = clocktest.Start()

func fixedNow(t time.Time) func() time.Time { return func() time.Time { return t } }

// parseLink splits a link from Links.URL into what the audio handler hands to Verify.
func parseLink(t testing.TB, link string) (id, expires, sig string) {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatalf("link %q: %v", link, err)
	}
	i := strings.Index(u.Path, "/voicemails/")
	if i < 0 || !strings.HasSuffix(u.Path, "/audio") {
		t.Fatalf("link %q: path %q is not …/voicemails/{id}/audio", link, u.Path)
	}
	q := u.Query()
	return u.Path[i+len("/voicemails/") : len(u.Path)-len("/audio")], q.Get("expires"), q.Get("sig")
}

var sigRE = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

func TestLinks_OK(t *testing.T) {
	tests := []struct {
		name, public, id string
		ttl              time.Duration
		wantPrefix       string
		wantTTL          time.Duration
	}{
		{name: "public URL", public: "https://relay.example.com", id: "42", wantPrefix: "https://relay.example.com/voicemails/42/audio?expires=", wantTTL: recording.DefaultTTL},
		{name: "trailing slash", public: "https://relay.example.com/", id: "42", wantPrefix: "https://relay.example.com/voicemails/42/audio?expires=", wantTTL: recording.DefaultTTL},
		{name: "path prefix", public: "https://example.com/relay/", id: "7", wantPrefix: "https://example.com/relay/voicemails/7/audio?expires=", wantTTL: recording.DefaultTTL},
		{name: "local default", public: "http://localhost:8080", id: "9223372036854775807", wantPrefix: "http://localhost:8080/voicemails/9223372036854775807/audio?expires=", wantTTL: recording.DefaultTTL},
		{name: "id escaped", public: "https://relay.example.com", id: "a/b c?d", wantPrefix: "https://relay.example.com/voicemails/a%2Fb%20c%3Fd/audio?expires=", wantTTL: recording.DefaultTTL},
		{name: "custom TTL", public: "https://relay.example.com", id: "42", ttl: time.Hour, wantPrefix: "https://relay.example.com/voicemails/42/audio?expires=", wantTTL: time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := recording.NewLinks(mustURL(t, tt.public), []string{"k1"}, tt.ttl, fixedNow(t0))
			link := l.URL(tt.id)
			wantExpires := strconv.FormatInt(t0.Add(tt.wantTTL).Unix(), 10)
			if want := tt.wantPrefix + wantExpires + "&sig="; !strings.HasPrefix(link, want) {
				t.Fatalf("URL(%q) = %q, want it to start %q", tt.id, link, want)
			}
			id, expires, sig := parseLink(t, link)
			if id != tt.id || expires != wantExpires || !sigRE.MatchString(sig) {
				t.Errorf("URL(%q) parsed = id %q expires %q sig %q; want %q, %q, 43 base64url characters", tt.id, id, expires, sig, tt.id, wantExpires)
			}
			// The MAC is pinned: domain, NUL, id, NUL, expires, unpadded base64url.
			m := hmac.New(sha256.New, []byte("k1"))
			m.Write([]byte("callrelay-audio-link\x00" + tt.id + "\x00" + wantExpires))
			if want := base64.RawURLEncoding.EncodeToString(m.Sum(nil)); sig != want {
				t.Errorf("sig = %q, want HMAC-SHA256(k1, domain\\0id\\0expires) = %q", sig, want)
			}
			for _, at := range []time.Time{t0, t0.Add(tt.wantTTL - time.Second)} {
				l := recording.NewLinks(mustURL(t, tt.public), []string{"k1"}, tt.ttl, fixedNow(at))
				if err := l.Verify(id, expires, sig); err != nil {
					t.Errorf("at %v: Verify(%q, %q, %q) = %v, want nil", at, id, expires, sig, err)
				}
			}
		})
	}
}

func TestLinks_ErrExpired(t *testing.T) {
	const ttl = time.Hour
	pub := mustURL(t, "https://relay.example.com")
	_, expires, sig := parseLink(t, recording.NewLinks(pub, []string{"k1"}, ttl, fixedNow(t0)).URL("42"))
	tests := []struct {
		name    string
		at      time.Time
		wantErr error
	}{
		{name: "one second before", at: t0.Add(ttl - time.Second), wantErr: nil},
		{name: "at the expiry", at: t0.Add(ttl), wantErr: recording.ErrLinkExpired},
		{name: "one second after", at: t0.Add(ttl + time.Second), wantErr: recording.ErrLinkExpired},
		{name: "a year after", at: t0.AddDate(1, 0, 0), wantErr: recording.ErrLinkExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := recording.NewLinks(pub, []string{"k1"}, ttl, fixedNow(tt.at))
			if err := l.Verify("42", expires, sig); !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Errorf("Verify at %v = %v, want %v", tt.at, err, tt.wantErr)
			}
		})
	}
}

func TestLinks_ErrInvalid(t *testing.T) {
	pub := mustURL(t, "https://relay.example.com")
	l := recording.NewLinks(pub, []string{"k1"}, 0, fixedNow(t0))
	id, expires, sig := parseLink(t, l.URL("42"))
	exp, _ := strconv.ParseInt(expires, 10, 64)
	other := recording.NewLinks(pub, []string{"k2"}, 0, fixedNow(t0))
	_, _, sigOtherKey := parseLink(t, other.URL("42"))
	_, _, sigOtherID := parseLink(t, l.URL("43"))
	_, expiresLater, sigLater := parseLink(t, recording.NewLinks(pub, []string{"k1"}, 0, fixedNow(t0.Add(time.Hour))).URL("42"))
	// Expired long ago, then the expiry pushed forward: must not verify (and must not say "expired").
	_, expiresOld, sigOld := parseLink(t, recording.NewLinks(pub, []string{"k1"}, time.Second, fixedNow(t0.AddDate(-1, 0, 0))).URL("42"))

	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	rawSig, _ := base64.RawURLEncoding.DecodeString(sig)
	// 43 base64 characters carry 258 bits for 256: the last one has 2 spare bits, which a lax
	// decoder ignores. Setting them gives another spelling of the same MAC bytes.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	sameBytesSig := sig[:len(sig)-1] + string(alphabet[strings.IndexByte(alphabet, sig[len(sig)-1])|3])

	tests := []struct{ name, id, expires, sig string }{
		{"id changed", "43", expires, sig},
		{"id with a leading zero", "042", expires, sig},
		{"id with a space", "42 ", expires, sig},
		{"id empty", "", expires, sig},
		{"id digit moved into expires", "4", "2" + expires, sig},
		{"expires digit moved into id", id + expires[:1], expires[1:], sig},
		{"sig for another id", id, expires, sigOtherID},
		{"expires plus one", id, strconv.FormatInt(exp+1, 10), sig},
		{"expires minus one", id, strconv.FormatInt(exp-1, 10), sig},
		{"expires from another link", id, expiresLater, sig},
		{"expired link with a later expiry", id, strconv.FormatInt(exp, 10), sigOld},
		{"old link's expiry, current sig", id, expiresOld, sig},
		{"expires with a leading zero", id, "0" + expires, sig},
		{"expires with a plus sign", id, "+" + expires, sig},
		{"expires with a space", id, expires + " ", sig},
		{"expires negative", id, "-" + expires, sig},
		{"expires in hex", id, strconv.FormatInt(exp, 16), sig},
		{"expires overflowing int64", id, "99999999999999999999", sig},
		{"expires empty", id, "", sig},
		{"sig first character changed", id, expires, flip(sig, 0)},
		{"sig last character changed", id, expires, flip(sig, len(sig)-1)},
		{"sig with padding", id, expires, sig + "="},
		{"sig spelled with non-zero spare bits", id, expires, sameBytesSig},
		{"sig in standard base64", id, expires, base64.StdEncoding.EncodeToString(rawSig)},
		{"sig in hex", id, expires, hex.EncodeToString(rawSig)},
		{"sig truncated", id, expires, sig[:len(sig)-1]},
		{"sig extended", id, expires, sig + "A"},
		{"sig empty", id, expires, ""},
		{"sig by an unknown key", id, expires, sigOtherKey},
		{"sig of a later link on a shifted expiry", id, expires, sigLater},
		{"all missing", "", "", ""},
		{"garbage", "\x00\xff", "\u2603", strings.Repeat("\x00", 43)},
		{"huge", strings.Repeat("9", 1<<16), strings.Repeat("9", 1<<16), strings.Repeat("A", 1<<16)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := l.Verify(tt.id, tt.expires, tt.sig); !errors.Is(err, recording.ErrLinkInvalid) {
				t.Errorf("Verify(%.40q, %.40q, %.60q) = %v, want ErrLinkInvalid", tt.id, tt.expires, tt.sig, err)
			}
		})
	}
	if err := l.Verify(id, expires, sig); err != nil {
		t.Errorf("untampered Verify(%q, %q, %q) = %v, want nil", id, expires, sig, err)
	}
}

func TestLinks_Rotation(t *testing.T) {
	pub := mustURL(t, "https://relay.example.com")
	links := func(at time.Time, secrets ...string) *recording.Links {
		return recording.NewLinks(pub, secrets, time.Hour, fixedNow(at))
	}
	signedOld := links(t0, "old").URL("42")
	signedNew := links(t0, "new", "old").URL("42")
	tests := []struct {
		name     string
		link     string
		verifier *recording.Links
		wantErr  error
	}{
		{name: "old link, [new old]", link: signedOld, verifier: links(t0, "new", "old"), wantErr: nil},
		{name: "old link, [new]: old key dropped", link: signedOld, verifier: links(t0, "new"), wantErr: recording.ErrLinkInvalid},
		{name: "old link, [old]", link: signedOld, verifier: links(t0, "old"), wantErr: nil},
		{name: "new link, [new]", link: signedNew, verifier: links(t0, "new"), wantErr: nil},
		{name: "new link, [old]: signed with the first secret", link: signedNew, verifier: links(t0, "old"), wantErr: recording.ErrLinkInvalid},
		{name: "new link, [other old new]", link: signedNew, verifier: links(t0, "other", "old", "new"), wantErr: nil},
		{name: "old link expired, old key still listed", link: signedOld, verifier: links(t0.Add(time.Hour), "new", "old"), wantErr: recording.ErrLinkExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, expires, sig := parseLink(t, tt.link)
			err := tt.verifier.Verify(id, expires, sig)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Errorf("Verify(%q) = %v, want %v", tt.link, err, tt.wantErr)
			}
		})
	}
}

func TestLinks_Secrets(t *testing.T) {
	pub := mustURL(t, "https://relay.example.com")
	tests := []struct {
		name             string
		signer, verifier []string
		wantErr          error
	}{
		{name: "empty entries ignored", signer: []string{"", "k"}, verifier: []string{"k"}, wantErr: nil},
		{name: "no secret: random key, not a fixed one", signer: nil, verifier: nil, wantErr: recording.ErrLinkInvalid},
		{name: "no secret is not the empty key", signer: nil, verifier: []string{""}, wantErr: recording.ErrLinkInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			signer := recording.NewLinks(pub, tt.signer, 0, fixedNow(t0))
			id, expires, sig := parseLink(t, signer.URL("42"))
			if err := signer.Verify(id, expires, sig); err != nil {
				t.Errorf("signer's own Verify = %v, want nil", err)
			}
			err := recording.NewLinks(pub, tt.verifier, 0, fixedNow(t0)).Verify(id, expires, sig)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Errorf("Verify by %q = %v, want %v", tt.verifier, err, tt.wantErr)
			}
		})
	}
}

func TestParseSecrets(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"s3cret", []string{"s3cret"}},
		{"new,old1,old2", []string{"new", "old1", "old2"}},
		{" new , old1 ,, old2 , ", []string{"new", "old1", "old2"}},
		{"\tnew\n,old", []string{"new", "old"}},
		{",,,", nil},
		{"a,b,a", []string{"a", "b"}},
		{"with inner space,old", []string{"with inner space", "old"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := recording.ParseSecrets(tt.in); !slices.Equal(got, tt.want) {
				t.Errorf("ParseSecrets(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzLinksVerify(f *testing.F) {
	pub := mustURL(f, "https://relay.example.com")
	l := recording.NewLinks(pub, []string{"fuzz-new", "fuzz-old"}, time.Hour, fixedNow(t0))
	old := recording.NewLinks(pub, []string{"fuzz-old"}, time.Hour, fixedNow(t0))
	for _, id := range []string{"42", "1", "12", "a/b", ""} {
		i, e, s := parseLink(f, l.URL(id))
		f.Add(i, e, s)
		f.Add(i+"0", e, s)
		f.Add(i, e+"0", s)
		f.Add(i, e, s[1:]+"A")
		i, e, s = parseLink(f, old.URL(id))
		f.Add(i, e, s)
	}
	f.Add("1", "23", "")
	f.Add("\x00", "\x00", "\x00")
	f.Fuzz(func(t *testing.T, id, expires, sig string) {
		err := l.Verify(id, expires, sig) // must not panic
		if err != nil && !errors.Is(err, recording.ErrLinkInvalid) && !errors.Is(err, recording.ErrLinkExpired) {
			t.Fatalf("Verify(%q, %q, %q) = %v, want nil, ErrLinkInvalid or ErrLinkExpired", id, expires, sig, err)
		}
		// Only URL-produced links verify: with now fixed, URL writes exactly one (expires, sig)
		// per id and key.
		if err == nil {
			_, e1, s1 := parseLink(t, l.URL(id))
			_, e2, s2 := parseLink(t, old.URL(id))
			if !(expires == e1 && sig == s1) && !(expires == e2 && sig == s2) {
				t.Fatalf("Verify(%q, %q, %q) = nil for a link URL never produced (%q %q, or %q %q)", id, expires, sig, e1, s1, e2, s2)
			}
		}
		// And every link URL produces verifies, whatever the id.
		if id != "" {
			gotID, e, s := parseLink(t, l.URL(id))
			if gotID != id {
				t.Fatalf("URL(%q) carries id %q", id, gotID)
			}
			if err := l.Verify(gotID, e, s); err != nil {
				t.Fatalf("Verify of URL(%q) = %v, want nil", id, err)
			}
		}
	})
}

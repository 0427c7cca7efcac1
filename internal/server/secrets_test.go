package server_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/callrelay/callrelay/internal/mail/mailtest"
	"github.com/callrelay/callrelay/internal/postgres/pgtest"
	"github.com/callrelay/callrelay/internal/recording"
	"github.com/callrelay/callrelay/internal/signature"
)

// lockedBuffer is a log sink written from request and job goroutines alike.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Every secret the server holds crosses it in a request, an email attempt or a link; none of
// them shows in its logs or in an ops API answer.
func TestSecretsNeverShown(t *testing.T) {
	const (
		sipPassword  = "sipPassw0rdQ7"
		smtpPassword = "smtpPassw0rdZ3"
		linkSecret   = "linkSecretK9"
		oldLink      = "oldLinkSecretM2"
	)
	secrets := map[string]string{"ops token": opsToken, "TWILIO_AUTH_TOKEN": authToken, "SIP password": sipPassword,
		"SMTP password": smtpPassword, "link secret": linkSecret, "previous link secret": oldLink}

	var logs lockedBuffer
	smtp := mailtest.StartDown(t) // every send fails: the error is logged and stored
	smtpURL := strings.Replace(smtp.URL(), "smtp://", "smtp://dana:"+smtpPassword+"@", 1)
	s := newTestServer(t, withMail(smtpURL), func(st *setup) {
		st.logs = &logs
		st.linkKeys = recording.ParseSecrets(linkSecret + "," + oldLink)
	})
	events, cancel := s.queue.Subscribe(river.EventKindJobFailed)
	defer cancel()

	var answers []*httptest.ResponseRecorder // ops API answers, and refusals of any route
	api := func(method, path, body, auth string) *httptest.ResponseRecorder {
		rec := s.apiAs(method, path, body, auth)
		answers = append(answers, rec)
		return rec
	}
	bearer := "Bearer " + opsToken
	routing := strings.Replace(threeTargets, "s3cret", sipPassword, 1)
	if rec := api(http.MethodPut, "/api/numbers/%2B15551230000", routing, bearer); rec.Code != http.StatusCreated {
		t.Fatalf("PUT: %d %s", rec.Code, rec.Body)
	}
	api(http.MethodPut, "/api/numbers/%2B15551230000", routing, bearer)
	api(http.MethodPut, "/api/numbers/%2B15551230000", strings.Replace(routing, `"transport":"tls"`, `"transport":"ftp"`, 1), bearer)
	api(http.MethodGet, "/api/numbers/%2B15551230000", "", bearer)
	api(http.MethodGet, "/api/numbers", "", bearer)
	// Wrong tokens, one a prefix of the right one, and the right one in the wrong scheme.
	for _, auth := range []string{"Bearer " + opsToken[:len(opsToken)-1], "Bearer " + opsToken + "x", "Basic " + opsToken, opsToken} {
		if rec := api(http.MethodGet, "/api/calls", "", auth); rec.Code != http.StatusUnauthorized {
			t.Errorf("Authorization %q: %d, want 401", auth, rec.Code)
		}
	}

	// Calls: forwarded (the TwiML for Twilio carries the SIP password: it must, and is not
	// an API answer), forged, and to voicemail.
	twiml(t, s.twilio("/twilio/voice", inbound("CA00000000000000000000000000000940")))
	forged := inbound("CA00000000000000000000000000000941")
	answers = append(answers,
		s.twilioSigned("/twilio/voice", forged, signature.Sign(authToken, "https://evil.example.com/twilio/voice", forged)),
		s.twilioSigned("/twilio/voice", forged, authToken),
		s.twilioRaw("/twilio/voice", forged.Encode()+"&x=%FF", signRaw(t, "/twilio/voice", forged.Encode()+"&x=%FF")))
	toVoicemail(t, s, "CA00000000000000000000000000000942")
	recordingStatus(t, s, "CA00000000000000000000000000000942", recSid(942), "completed", 2) // too short to transcribe: the email is due now
	awaitJob(t, events, river.EventKindJobFailed, 20*time.Second)
	if vm := getVoicemail(t, s, "1"); vm["notification"].(map[string]any)["last_error"] == nil {
		t.Errorf("voicemail %v: want the failed send's error, to check it", vm)
	}
	api(http.MethodGet, "/api/voicemails/1", "", bearer)
	api(http.MethodGet, "/api/voicemails", "", bearer)
	api(http.MethodGet, "/api/calls/CA00000000000000000000000000000942", "", bearer)
	api(http.MethodGet, "/api/calls", "", bearer)

	// Audio links: a good one, and tampered ones.
	link := strings.TrimPrefix(s.links.URL("1"), publicURL)
	for _, l := range []string{link, link[:len(link)-1] + "A", strings.Replace(link, "/1/", "/2/", 1)} {
		rec := httptest.NewRecorder()
		s.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, l, nil))
		if l != link {
			answers = append(answers, rec)
		}
	}

	out := logs.String()
	for _, want := range []string{"webhook refused: bad signature", "webhook refused: parameter is not UTF-8 text", `"status":401`} {
		if !strings.Contains(out, want) {
			t.Errorf("the logs lack %q: the capture missed them?\n%s", want, out)
		}
	}
	for name, secret := range secrets {
		for _, form := range []string{secret, url.QueryEscape(secret)} {
			if strings.Contains(out, form) {
				t.Errorf("the %s is in the logs:\n%s", name, out)
			}
			for _, rec := range answers {
				if strings.Contains(rec.Body.String(), form) || strings.Contains(strings.Join(headerValues(rec.Header()), "\n"), form) {
					t.Errorf("the %s is in an answer: %d %s", name, rec.Code, rec.Body)
				}
			}
		}
	}
}

func headerValues(h http.Header) []string {
	var out []string
	for k, vs := range h {
		for _, v := range vs {
			out = append(out, k+": "+v)
		}
	}
	return out
}

// CALLRELAY_LINK_SECRET=new,old: links emailed before the rotation keep working, new links are
// signed with the new secret, and dropping the old secret ends the old links.
func TestAudioLinkRotation(t *testing.T) {
	pool := pgtest.NewPool(t)
	media := newMediaStandIn(t)
	keys := func(env string) option {
		return func(st *setup) { st.linkKeys = recording.ParseSecrets(env) }
	}
	before := newTestServer(t, withPool(pool), withMedia(media), keys("old"))
	before.putNumber(masked, threeTargets)
	toVoicemail(t, before, "CA00000000000000000000000000000950")
	recordingStatus(t, before, "CA00000000000000000000000000000950", recSid(950), "completed", 30)
	oldLink := strings.TrimPrefix(before.links.URL("1"), publicURL)

	rotating := newTestServer(t, withPool(pool), withMedia(media), keys(" new , old "))
	rotated := newTestServer(t, withPool(pool), withMedia(media), keys("new"))
	newLink := strings.TrimPrefix(rotating.links.URL("1"), publicURL)
	get := func(s *testServer, link string) int {
		rec := httptest.NewRecorder()
		s.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, link, nil))
		if rec.Code == http.StatusOK && !bytes.Equal(rec.Body.Bytes(), media.audio) {
			t.Errorf("%s: 200 with %d bytes, want the recording", link, rec.Body.Len())
		}
		return rec.Code
	}
	for _, c := range []struct {
		name   string
		s      *testServer
		link   string
		status int
	}{
		{"old link, old secret", before, oldLink, http.StatusOK},
		{"old link, new,old", rotating, oldLink, http.StatusOK},
		{"new link, new,old", rotating, newLink, http.StatusOK},
		{"new link, new", rotated, newLink, http.StatusOK},
		{"new link, old secret: signed with the new one", before, newLink, http.StatusForbidden},
		{"old link, old secret dropped", rotated, oldLink, http.StatusForbidden},
	} {
		if got := get(c.s, c.link); got != c.status {
			t.Errorf("%s: %d, want %d", c.name, got, c.status)
		}
	}
}

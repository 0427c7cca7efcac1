package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/callrelay/callrelay/internal/clocktest"
	"github.com/callrelay/callrelay/internal/config"
	"github.com/callrelay/callrelay/internal/mail/mailtest"
	"github.com/callrelay/callrelay/internal/postgres/pgtest"
	"github.com/callrelay/callrelay/internal/recording"
	"github.com/callrelay/callrelay/internal/voicemail"
)

// mediaStandIn serves recordings as Twilio does, only with the account's basic auth.
type mediaStandIn struct {
	srv      *httptest.Server
	audio    []byte
	requests atomic.Int32
	refused  atomic.Int32
}

func newMediaStandIn(t testing.TB) *mediaStandIn { return newMediaStandInWith(t, nil) }

// newMediaStandInWith serves a recording with serve instead, when serve returns true: the
// credentials and the path have been checked, sid is the recording's.
func newMediaStandInWith(t testing.TB, serve func(w http.ResponseWriter, r *http.Request, sid string) bool) *mediaStandIn {
	m := &mediaStandIn{audio: append([]byte("ID3\x04\x00"), bytes.Repeat([]byte{0xff, 0xfb, 0x90, 0x44}, 512)...)}
	prefix := "/2010-04-01/Accounts/" + accountSID + "/Recordings/"
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.requests.Add(1)
		if u, p, ok := r.BasicAuth(); !ok || u != accountSID || p != authToken {
			m.refused.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"code":20003,"message":"Authenticate","status":401}`)
			return
		}
		sid, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, prefix), ".mp3")
		if !strings.HasPrefix(r.URL.Path, prefix) || !ok || !strings.HasPrefix(sid, "RE") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"code":20404,"message":"The requested resource was not found","status":404}`)
			return
		}
		if serve != nil && serve(w, r, sid) {
			return
		}
		w.Header().Set("Content-Type", "audio/mpeg")
		_, _ = w.Write(m.audio)
	}))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *mediaStandIn) recordingURL(sid string) string {
	return m.srv.URL + "/2010-04-01/Accounts/" + accountSID + "/Recordings/" + sid
}

func recSid(n int) string { return fmt.Sprintf("RE%032x", n) }

// toVoicemail brings a call to the voicemail prompt: nobody answered.
func toVoicemail(t testing.TB, s *testServer, callSid string) {
	t.Helper()
	twiml(t, s.twilio("/twilio/voice", inbound(callSid)))
	f := inbound(callSid)
	f.Set("CallStatus", "in-progress")
	f.Set("DialCallStatus", "no-answer")
	if doc := twiml(t, s.twilio("/twilio/dial-outcome?attempt=0", f)); doc.Find("Record") == nil {
		t.Fatalf("no voicemail after no-answer: %v", doc.ChildNames())
	}
}

func recordingStatus(t testing.TB, s *testServer, callSid, sid, status string, seconds int) {
	t.Helper()
	f := url.Values{
		"AccountSid": {accountSID}, "CallSid": {callSid}, "RecordingSid": {sid},
		"RecordingUrl": {s.media.recordingURL(sid)}, "RecordingStatus": {status},
		"RecordingDuration": {fmt.Sprint(seconds)}, "RecordingChannels": {"1"}, "RecordingSource": {"RecordVerb"},
		"RecordingStartTime": {t0.Add(30 * time.Second).Format(time.RFC1123Z)},
	}
	if rec := s.twilio("/twilio/recording-status", f); rec.Code != http.StatusNoContent {
		t.Fatalf("recording-status: %d %s", rec.Code, rec.Body)
	}
}

func transcription(t testing.TB, s *testServer, callSid, sid, status, text string) {
	t.Helper()
	f := url.Values{
		"AccountSid": {accountSID}, "CallSid": {callSid}, "RecordingSid": {sid},
		"TranscriptionSid": {"TR" + sid[2:]}, "TranscriptionStatus": {status}, "TranscriptionText": {text},
		"TranscriptionType": {"fast"}, "RecordingUrl": {s.media.recordingURL(sid)},
	}
	if rec := s.twilio("/twilio/transcription", f); rec.Code != http.StatusNoContent {
		t.Fatalf("transcription: %d %s", rec.Code, rec.Body)
	}
}

func getVoicemail(t testing.TB, s *testServer, id string) map[string]any {
	t.Helper()
	rec := s.api(http.MethodGet, "/api/voicemails/"+id, "")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET voicemail %s: %d %s", id, rec.Code, rec.Body)
	}
	var vm map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &vm); err != nil {
		t.Fatal(err)
	}
	return vm
}

// awaitJob waits for the queue to report a job event of kind, failing after timeout.
func awaitJob(t testing.TB, events <-chan *river.Event, kind river.EventKind, timeout time.Duration) *river.Event {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev := <-events:
			if ev.Kind == kind {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %s job event within %s", kind, timeout)
			return nil
		}
	}
}

// jobCount counts the voicemail email jobs ever enqueued.
func jobCount(t testing.TB, s *testServer) int {
	t.Helper()
	var n int
	if err := s.db.Pool().QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE kind = 'notify_voicemail'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestVoicemail_EmailWithTranscript(t *testing.T) {
	smtp := mailtest.Start(t)
	s := newTestServer(t, withMail(smtp.URL()))
	s.putNumber(masked, threeTargets)
	events, cancel := s.queue.Subscribe(river.EventKindJobCompleted)
	defer cancel()

	toVoicemail(t, s, "CA00000000000000000000000000000700")
	recordingStatus(t, s, "CA00000000000000000000000000000700", recSid(700), "completed", 30)
	transcription(t, s, "CA00000000000000000000000000000700", recSid(700), "completed", "Hi Dana, call me back <soon> & thanks.")

	e := mailtest.Parse(t, smtp.Next(20*time.Second).Data)
	if got := e.Header.Get("To"); !strings.Contains(got, "dana@example.com") {
		t.Errorf("To = %q, want the owner", got)
	}
	subj, err := new(mime.WordDecoder).DecodeHeader(e.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "Voicemail from (555) 987-0000 (0:30): “Hi Dana, call me back <soon> & thanks.”"; subj != want {
		t.Errorf("Subject = %q, want %q: the caller's number and what they said", subj, want)
	}
	// Numbers for people (national format, the caller in the number's country), the time in
	// the instance's zone (UTC unless CALLRELAY_TIME_ZONE says otherwise).
	for _, want := range []string{"(555) 987-0000", "(555) 123-0000", t0.Add(30 * time.Second).Format("Mon, 2 Jan 2006 15:04 MST"), "0:30", "Hi Dana, call me back <soon> & thanks.", publicURL + "/inbox/voicemails/1?"} {
		if !strings.Contains(e.Text, want) {
			t.Errorf("text part lacks %q:\n%s", want, e.Text)
		}
	}
	if !strings.Contains(e.HTML, "call me back &lt;soon&gt; &amp; thanks.") || !strings.Contains(e.HTML, `href="tel:&#43;15559870000"`) {
		t.Errorf("HTML part lacks the escaped transcript or the caller's tel: link:\n%s", e.HTML)
	}
	if got := e.Attachments["voicemail-1.mp3"]; !bytes.Equal(got, s.media.audio) || e.ContentType["voicemail-1.mp3"] != "audio/mpeg" {
		t.Errorf("attachment = %d bytes (%s), want the recording's %d bytes", len(got), e.ContentType["voicemail-1.mp3"], len(s.media.audio))
	}
	awaitJob(t, events, river.EventKindJobCompleted, 10*time.Second)

	vm := getVoicemail(t, s, "1")
	n := vm["notification"].(map[string]any)
	if n["status"] != "sent" || n["attempts"] != float64(1) || vm["transcript"] != "Hi Dana, call me back <soon> & thanks." {
		t.Errorf("voicemail = %v, want transcript and notification sent after one attempt", vm)
	}
	if s.media.refused.Load() != 0 {
		t.Errorf("the media stand-in refused %d requests: credentials missing", s.media.refused.Load())
	}

	// The email's button opens the owner's page of the voicemail, without credentials.
	page := e.Text[strings.Index(e.Text, publicURL+"/inbox/voicemails/"):]
	page = strings.TrimPrefix(strings.Fields(page)[0], publicURL)
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, page, nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "call me back &lt;soon&gt; &amp; thanks.") {
		t.Errorf("inbox link: %d, want 200 with the transcript:\n%s", rec.Code, rec.Body.String())
	}

	// The audio link of emails sent before the inbox works without credentials; a tampered or
	// foreign one does not.
	link := strings.TrimPrefix(s.links.URL("1"), publicURL)
	rec = httptest.NewRecorder()
	s.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, link, nil))
	if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), s.media.audio) {
		t.Errorf("audio link: %d, %d bytes; want 200 with the recording", rec.Code, rec.Body.Len())
	}
	for _, bad := range []string{
		strings.Replace(link, "/voicemails/1/", "/voicemails/2/", 1),
		strings.Replace(link, "expires=", "expires=1", 1),
		link[:len(link)-2] + "xx",
		"/voicemails/1/audio",
	} {
		rec := httptest.NewRecorder()
		s.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, bad, nil))
		if rec.Code != http.StatusForbidden {
			t.Errorf("tampered link %s: %d, want 403", bad, rec.Code)
		}
	}

	// A late duplicate transcript is stored, not sent again.
	transcription(t, s, "CA00000000000000000000000000000700", recSid(700), "completed", "Hi Dana, call me back <soon> & thanks.")
	if got := jobCount(t, s); got != 1 {
		t.Errorf("email jobs = %d, want 1", got)
	}
}

// Twilio's CallerName (caller-name lookup) reaches the owner, cleaned of control and bidi
// characters and bounded; the time is in the number's time_zone.
func TestVoicemail_CallerNameAndTimeZone(t *testing.T) {
	smtp := mailtest.Start(t)
	s := newTestServer(t, withMail(smtp.URL()))
	s.putNumber(masked, `{"owner_email":"dana@example.com","time_zone":"America/Los_Angeles","targets":[{"type":"phone","to":"+15550001111"}]}`)
	const sid = "CA00000000000000000000000000000790"
	f := inbound(sid)
	f.Set("CallerName", "\u202eJOHN\x1b SMITH"+strings.Repeat("x", 500))
	twiml(t, s.twilio("/twilio/voice", f))
	f.Set("CallStatus", "in-progress")
	f.Set("DialCallStatus", "no-answer")
	if doc := twiml(t, s.twilio("/twilio/dial-outcome?attempt=0", f)); doc.Find("Record") == nil {
		t.Fatalf("no voicemail after no-answer: %v", doc.ChildNames())
	}
	recordingStatus(t, s, sid, recSid(790), "completed", 2)
	e := mailtest.Parse(t, smtp.Next(20*time.Second).Data)
	name := "JOHN SMITH" + strings.Repeat("x", 54) // 64 characters
	la, _ := time.LoadLocation("America/Los_Angeles")
	for _, want := range []string{"From:     " + name + ", (555) 987-0000", t0.Add(30 * time.Second).In(la).Format("Mon, 2 Jan 2006 15:04 MST")} {
		if !strings.Contains(e.Text, want) {
			t.Errorf("text part lacks %q:\n%s", want, e.Text)
		}
	}
	if vm := getVoicemail(t, s, "1"); vm["caller_name"] != name {
		t.Errorf("caller_name = %q, want %q", vm["caller_name"], name)
	}
}

func TestVoicemail_ExpiredLink(t *testing.T) {
	s := newTestServer(t)
	s.putNumber(masked, threeTargets)
	toVoicemail(t, s, "CA00000000000000000000000000000705")
	recordingStatus(t, s, "CA00000000000000000000000000000705", recSid(705), "completed", 30)
	u, _ := url.Parse(publicURL)
	monthAgo := func() time.Time { return clocktest.Now().Add(-31 * 24 * time.Hour) }
	old := recording.NewLinks(u, []string{"linksecret"}, recording.DefaultTTL, monthAgo)
	for _, l := range []*recording.Links{old, s.links} {
		rec := httptest.NewRecorder()
		s.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, strings.TrimPrefix(l.URL("1"), publicURL), nil))
		if want := map[bool]int{true: http.StatusForbidden, false: http.StatusOK}[l == old]; rec.Code != want {
			t.Errorf("link %s: %d, want %d", l.URL("1"), rec.Code, want)
		}
	}
}

// Callbacks come twice and out of order: still one email, with the transcript.
func TestVoicemail_DuplicateAndReordered(t *testing.T) {
	smtp := mailtest.Start(t)
	s := newTestServer(t, withMail(smtp.URL()))
	s.putNumber(masked, threeTargets)
	events, cancel := s.queue.Subscribe(river.EventKindJobCompleted)
	defer cancel()

	toVoicemail(t, s, "CA00000000000000000000000000000710")
	transcription(t, s, "CA00000000000000000000000000000710", recSid(710), "completed", "Before the recording.")
	transcription(t, s, "CA00000000000000000000000000000710", recSid(710), "completed", "Before the recording.")
	recordingStatus(t, s, "CA00000000000000000000000000000710", recSid(710), "completed", 12)
	recordingStatus(t, s, "CA00000000000000000000000000000710", recSid(710), "completed", 12)

	e := mailtest.Parse(t, smtp.Next(20*time.Second).Data)
	if !strings.Contains(e.Text, "Before the recording.") {
		t.Errorf("email lacks the early transcript:\n%s", e.Text)
	}
	awaitJob(t, events, river.EventKindJobCompleted, 10*time.Second)
	if got := jobCount(t, s); got != 1 {
		t.Errorf("email jobs = %d, want 1", got)
	}
	if got := len(smtp.Received()); got != 1 {
		t.Errorf("emails = %d, want 1", got)
	}
}

func TestVoicemail_NoTranscript(t *testing.T) {
	for _, tc := range []struct {
		name, routing string
		seconds       int
		transcript    string // "" for none coming
		wantReason    string
	}{
		{"failed", threeTargets, 30, "failed", "could not transcribe"},
		{"too short", threeTargets, 2, "", "too short"},
		{"too long", threeTargets, 120, "", "too long"},
		{"language", strings.Replace(threeTargets, `"timeout_seconds":15`, `"language":"fr-FR"`, 1), 30, "", "American English"},
		{"off", strings.Replace(threeTargets, `"timeout_seconds":15`, `"voicemail":{"transcribe":false}`, 1), 30, "", "turned off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			smtp := mailtest.Start(t)
			s := newTestServer(t, withMail(smtp.URL()))
			s.putNumber(masked, tc.routing)
			toVoicemail(t, s, "CA00000000000000000000000000000720")
			recordingStatus(t, s, "CA00000000000000000000000000000720", recSid(720), "completed", tc.seconds)
			if tc.transcript != "" {
				transcription(t, s, "CA00000000000000000000000000000720", recSid(720), tc.transcript, "")
			}
			// The transcript wait is an hour: an email now proves nobody waited for it.
			e := mailtest.Parse(t, smtp.Next(20*time.Second).Data)
			if !strings.Contains(e.Text, tc.wantReason) || !strings.Contains(e.HTML, tc.wantReason) {
				t.Errorf("email does not say %q:\n%s", tc.wantReason, e.Text)
			}
		})
	}
}

func TestVoicemail_TranscriptWaitExpires(t *testing.T) {
	smtp := mailtest.Start(t)
	s := newTestServer(t, withMail(smtp.URL()), withConfig(func(c *config.Config) { c.TranscriptWait = 500 * time.Millisecond }))
	s.putNumber(masked, threeTargets)
	toVoicemail(t, s, "CA00000000000000000000000000000730")
	recordingStatus(t, s, "CA00000000000000000000000000000730", recSid(730), "completed", 30)
	// River's scheduler looks for due jobs every 5 s.
	e := mailtest.Parse(t, smtp.Next(20*time.Second).Data)
	if !strings.Contains(e.Text, "did not arrive in time") {
		t.Errorf("email does not say the transcript is late:\n%s", e.Text)
	}
}

func TestVoicemail_Absent(t *testing.T) {
	s := newTestServer(t)
	s.putNumber(masked, threeTargets)
	toVoicemail(t, s, "CA00000000000000000000000000000740")
	recordingStatus(t, s, "CA00000000000000000000000000000740", recSid(740), "absent", 0)
	recordingStatus(t, s, "CA00000000000000000000000000000740", recSid(740), "absent", 0)
	if rec := s.api(http.MethodGet, "/api/voicemails", ""); !strings.Contains(rec.Body.String(), `"voicemails":[]`) {
		t.Errorf("voicemails after an absent recording: %s, want none", rec.Body)
	}
	if got := jobCount(t, s); got != 0 {
		t.Errorf("email jobs = %d, want 0", got)
	}
	c := getCall(t, s, "CA00000000000000000000000000000740")
	n := 0
	for _, e := range c["events"].([]any) {
		if e := e.(map[string]any); e["type"] == "recording" && e["outcome"] == "absent" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("absent recording events = %d, want 1 on the timeline", n)
	}
}

func TestVoicemail_SMTPDownThenUp(t *testing.T) {
	smtp := mailtest.StartDown(t)
	s := newTestServer(t, withMail(smtp.URL()))
	s.putNumber(masked, threeTargets)
	events, cancel := s.queue.Subscribe(river.EventKindJobFailed, river.EventKindJobCompleted)
	defer cancel()

	toVoicemail(t, s, "CA00000000000000000000000000000750")
	recordingStatus(t, s, "CA00000000000000000000000000000750", recSid(750), "completed", 2) // no transcript: due at once
	failed := awaitJob(t, events, river.EventKindJobFailed, 20*time.Second)

	vm := getVoicemail(t, s, "1")
	n := vm["notification"].(map[string]any)
	if n["status"] != "pending" || n["attempts"] != float64(1) || n["last_error"] == nil {
		t.Errorf("after a failed send: notification %v, want pending with the error", n)
	}
	if failed.Job.ScheduledAt.Before(clocktest.Now().Add(20 * time.Second)) {
		t.Errorf("retry scheduled at %v, want a backoff of about 30 s", failed.Job.ScheduledAt)
	}

	// SMTP comes back; retry now rather than wait out the backoff.
	smtp.Up()
	if _, err := s.queue.JobRetry(context.Background(), failed.Job.ID); err != nil {
		t.Fatal(err)
	}
	smtp.Next(20 * time.Second)
	awaitJob(t, events, river.EventKindJobCompleted, 10*time.Second)
	if got := len(smtp.Received()); got != 1 {
		t.Errorf("emails = %d, want 1", got)
	}
	vm = getVoicemail(t, s, "1")
	if n := vm["notification"].(map[string]any); n["status"] != "sent" || n["attempts"] != float64(2) {
		t.Errorf("notification = %v, want sent on the second attempt", n)
	}
}

// Two replicas on one database, callbacks split and repeated across both: one email.
func TestVoicemail_TwoReplicas(t *testing.T) {
	smtp := mailtest.Start(t)
	pool := pgtest.NewPool(t)
	media := newMediaStandIn(t)
	a := newTestServer(t, withMail(smtp.URL()), withPool(pool), withMedia(media))
	b := newTestServer(t, withMail(smtp.URL()), withPool(pool), withMedia(media))
	a.putNumber(masked, threeTargets)
	eventsA, cancelA := a.queue.Subscribe(river.EventKindJobCompleted)
	defer cancelA()
	eventsB, cancelB := b.queue.Subscribe(river.EventKindJobCompleted)
	defer cancelB()

	toVoicemail(t, a, "CA00000000000000000000000000000760")
	recordingStatus(t, b, "CA00000000000000000000000000000760", recSid(760), "completed", 20)
	recordingStatus(t, a, "CA00000000000000000000000000000760", recSid(760), "completed", 20)
	transcription(t, a, "CA00000000000000000000000000000760", recSid(760), "completed", "Two replicas.")
	transcription(t, b, "CA00000000000000000000000000000760", recSid(760), "completed", "Two replicas.")

	smtp.Next(20 * time.Second)
	select {
	case <-eventsA:
	case <-eventsB:
	case <-time.After(10 * time.Second):
		t.Fatal("no job completed")
	}
	if got := jobCount(t, a); got != 1 {
		t.Errorf("email jobs = %d, want 1", got)
	}
	vm := getVoicemail(t, b, "1")
	if n := vm["notification"].(map[string]any); n["status"] != "sent" || n["attempts"] != float64(1) {
		t.Errorf("notification = %v, want sent once", n)
	}
	if got := len(smtp.Received()); got != 1 {
		t.Errorf("emails = %d, want 1", got)
	}
}

func TestVoicemailsAPI(t *testing.T) {
	s := newTestServer(t)
	s.putNumber(masked, threeTargets)
	toVoicemail(t, s, "CA00000000000000000000000000000770")
	recordingStatus(t, s, "CA00000000000000000000000000000770", recSid(770), "completed", 30)

	rec := s.api(http.MethodGet, "/api/voicemails?number=%2B15551230000&limit=10", "")
	var list struct {
		Voicemails []map[string]any `json:"voicemails"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || len(list.Voicemails) != 1 {
		t.Fatalf("list: %d %s", rec.Code, rec.Body)
	}
	vm := list.Voicemails[0]
	if vm["call_sid"] != "CA00000000000000000000000000000770" || vm["from"] != caller || vm["transcript_status"] != "pending" || vm["audio_url"] != "/api/voicemails/1/audio" {
		t.Errorf("voicemail = %v", vm)
	}
	if strings.Contains(rec.Body.String(), s.media.srv.URL) {
		t.Errorf("the Twilio recording URL is exposed: %s", rec.Body)
	}
	for path, want := range map[string]int{
		"/api/voicemails?number=5551230000": http.StatusBadRequest,
		"/api/voicemails?limit=0":           http.StatusBadRequest,
		"/api/voicemails/99":                http.StatusNotFound,
		"/api/voicemails/abc":               http.StatusBadRequest,
	} {
		if rec := s.api(http.MethodGet, path, ""); rec.Code != want {
			t.Errorf("%s: %d, want %d", path, rec.Code, want)
		}
	}
	rec = s.api(http.MethodGet, "/api/voicemails/1/audio", "")
	if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), s.media.audio) || rec.Header().Get("Content-Type") != "audio/mpeg" {
		t.Errorf("audio: %d %q %d bytes", rec.Code, rec.Header().Get("Content-Type"), rec.Body.Len())
	}
	if rec := s.apiAs(http.MethodGet, "/api/voicemails/1/audio", "", ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("audio without the ops token: %d, want 401", rec.Code)
	}
}

func TestRecordingCallbacks_ErrInvalid(t *testing.T) {
	s := newTestServer(t)
	for path, form := range map[string]url.Values{
		"/twilio/recording-status": {"CallSid": {"CA00000000000000000000000000000001"}},
		"/twilio/transcription":    {"CallSid": {"CA00000000000000000000000000000001"}, "RecordingSid": {"RE00000000000000000000000000000001"}, "TranscriptionStatus": {"maybe"}},
	} {
		if rec := s.twilio(path, form); rec.Code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", path, rec.Code)
		}
		if rec := s.twilioSigned(path, form, ""); rec.Code != http.StatusForbidden {
			t.Errorf("%s unsigned: %d, want 403", path, rec.Code)
		}
	}
}

// BenchmarkVoicemailDelivery measures the time from Twilio's recording-status callback to the
// email accepted by an SMTP server over TCP, one voicemail at a time, with the queue's
// production settings. The audio is fetched from a local stand-in, so Twilio's own media
// latency is not included. Run: go test -run x -bench VoicemailDelivery ./internal/server/
func BenchmarkVoicemailDelivery(b *testing.B) {
	smtp := mailtest.Start(b)
	s := newTestServer(b, withMail(smtp.URL()), func(st *setup) { st.queueOpts = voicemail.QueueOptions{} })
	s.putNumber(masked, threeTargets)
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		sid := fmt.Sprintf("CA%032x", i)
		toVoicemail(b, s, sid)
		b.StartTimer()
		// 2 s: too short to transcribe, so the email is due at once.
		recordingStatus(b, s, sid, recSid(i), "completed", 2)
		smtp.Next(30 * time.Second)
	}
}

// A call forwarded from the cache while the database was down has no row; when nobody answers,
// its voicemail must still be kept and emailed.
func TestVoicemail_CallMissedByStore(t *testing.T) {
	s := newTestServer(t)
	s.putNumber(masked, threeTargets)
	f := inbound("CA00000000000000000000000000000780") // no /twilio/voice stored this call
	f.Set("CallStatus", "in-progress")
	f.Set("DialCallStatus", "no-answer")
	if doc := twiml(t, s.twilio("/twilio/dial-outcome?attempt=0", f)); doc.Find("Record") == nil {
		t.Fatalf("dial-outcome of an unknown call: %v, want voicemail", doc.ChildNames())
	}
	recordingStatus(t, s, "CA00000000000000000000000000000780", recSid(780), "completed", 30)
	if got := jobCount(t, s); got != 1 {
		t.Errorf("email jobs = %d, want 1", got)
	}
	if vm := getVoicemail(t, s, "1"); vm["call_sid"] != "CA00000000000000000000000000000780" || vm["number"] != masked {
		t.Errorf("voicemail = %v", vm)
	}
}

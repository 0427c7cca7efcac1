package voicemail

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/clocktest"
	"github.com/callrelay/callrelay/internal/mail"
)

const testLink = "https://callrelay.example.com/inbox/voicemails/7?expires=1795348800&owner=ZGFuYUBleGFtcGxlLmNvbQ&sig=abc-_DEF"

// recordedAt is when the test voicemail was recorded, in Tokyo's zone: the email shows it in
// the owner's zone (testZone). linkExpires is when its link expires; sentAt when the email
// is sent.
var (
	recordedAt  = clocktest.Start().In(time.FixedZone("JST", 9*3600))
	linkExpires = recordedAt.Add(30 * 24 * time.Hour)
	sentAt      = recordedAt.Add(95 * time.Second)
	testZone    = mustZone("America/New_York")
)

func mustZone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

func testEnvelope(from string) envelope {
	return envelope{from: from, zone: testZone, sentAt: sentAt, link: testLink, linkExpires: linkExpires}
}

func testVoicemail(status string, transcript *string, seconds int) *callrelay.Voicemail {
	return &callrelay.Voicemail{
		ID: 7, CallSid: "CA1", Number: "+15551230000", From: "+15559870000", OwnerEmail: "dana@example.com",
		RecordingSid: "RE0123456789abcdef", DurationSeconds: seconds,
		RecordedAt:       recordedAt,
		TranscriptStatus: status, Transcript: transcript,
	}
}

func mustCompose(t *testing.T, vm *callrelay.Voicemail, from string, a audio) mail.Message {
	t.Helper()
	m, err := compose(vm, testEnvelope(from), a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mail.Render(m); err != nil {
		t.Fatalf("the composed message does not render: %v", err)
	}
	return m
}

func str(s string) *string { return &s }

func TestCompose(t *testing.T) {
	t.Parallel()
	m := mustCompose(t, testVoicemail(callrelay.TranscriptCompleted, str(`Hi Dana, call me back <soon> & "thanks"`), 75),
		"Callrelay <callrelay@example.com>", audio{data: []byte("ID3 audio"), contentType: "audio/mpeg"})

	if m.To != "dana@example.com" || m.From != "Callrelay <callrelay@example.com>" {
		t.Errorf("From %q To %q, want the sender and the owner", m.From, m.To)
	}
	// The caller (national format: same country) and the start of what they said.
	if want := `Voicemail from (555) 987-0000 (1:15): “Hi Dana, call me back <soon> & "thanks"”`; m.Subject != want {
		t.Errorf("Subject = %q, want %q", m.Subject, want)
	}
	// Date is the time of sending, in the owner's zone.
	if !m.Date.Equal(sentAt) || m.Date.Location() != testZone {
		t.Errorf("Date = %v, want %v in %v", m.Date, sentAt, testZone)
	}
	if m.Headers["X-Callrelay-Voicemail"] != "7" || m.Headers["X-Callrelay-Call"] != "CA1" || m.Headers["Auto-Submitted"] != "auto-generated" {
		t.Errorf("headers = %v, want the voicemail, call and Auto-Submitted: auto-generated", m.Headers)
	}
	when := recordedAt.In(testZone).Format("Mon, 2 Jan 2006 15:04 MST")
	if !strings.Contains(when, "EST") && !strings.Contains(when, "EDT") {
		t.Fatalf("when = %q, want New York's time", when)
	}
	// The text part opens with the transcript, then how to listen, then the details.
	for _, want := range []string{
		"(555) 987-0000", "(555) 123-0000", when, "1:15",
		`Hi Dana, call me back <soon> & "thanks"`, testLink, linkExpires.In(testZone).Format("2 Jan 2006"), "The recording is attached.",
	} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("text part lacks %q:\n%s", want, m.Text)
		}
	}
	if !strings.HasPrefix(m.Text, `"Hi Dana, call me back <soon> & "thanks""`+"\n") {
		t.Errorf("text part does not open with the transcript:\n%s", m.Text)
	}
	if i, j := strings.Index(m.Text, testLink), strings.Index(m.Text, "From:"); i < 0 || j < 0 || i > j {
		t.Errorf("text part: the link should come before the details:\n%s", m.Text)
	}
	for _, want := range []string{
		`<html lang="en">`, `<meta name="viewport" content="width=device-width, initial-scale=1">`,
		"<title>Voicemail from (555) 987-0000 (1:15): “Hi Dana, call me back &lt;soon&gt; &amp; &#34;thanks&#34;”</title>",
		`<a href="tel:&#43;15559870000"`, ">(555) 987-0000</a>", "(555) 123-0000", when, ">1:15</td>",
		"Hi Dana, call me back &lt;soon&gt; &amp; &#34;thanks&#34;",
		`id="play" href="` + strings.ReplaceAll(testLink, "&", "&amp;") + `"`, "The recording is attached.",
	} {
		if !strings.Contains(m.HTML, want) {
			t.Errorf("HTML part lacks %q:\n%s", want, m.HTML)
		}
	}
	if strings.Contains(m.HTML, "<soon>") {
		t.Errorf("HTML part has the transcript unescaped:\n%s", m.HTML)
	}
	if strings.Count(m.HTML, testLinkHTML()) != 1 {
		t.Errorf("HTML part links the audio %d times, want one button", strings.Count(m.HTML, testLinkHTML()))
	}
	// The preheader (the inbox preview) is the first thing in the body: caller and words.
	body := m.HTML[strings.Index(m.HTML, "<body"):]
	if i, j := strings.Index(body, "(555) 987-0000: “Hi Dana"), strings.Index(body, `id="transcript"`); i < 0 || i > j {
		t.Errorf("HTML part has no preheader with the caller and the transcript before the transcript:\n%s", body)
	}
	if i, j, k := strings.Index(body, `id="transcript"`), strings.Index(body, `id="play"`), strings.Index(body, ">From</td>"); !(i < j && j < k) {
		t.Errorf("HTML part is not transcript, play button, details (%d, %d, %d)", i, j, k)
	}
	if strings.Contains(m.Text, "No transcript") || strings.Contains(m.HTML, "No transcript") {
		t.Errorf("email says there is no transcript:\n%s", m.Text)
	}
	if len(m.Attachments) != 1 || m.Attachments[0].Filename != "voicemail-7.mp3" ||
		m.Attachments[0].ContentType != "audio/mpeg" || !bytes.Equal(m.Attachments[0].Data, []byte("ID3 audio")) {
		t.Errorf("attachments = %+v, want voicemail-7.mp3", m.Attachments)
	}
}

func testLinkHTML() string { return strings.ReplaceAll(testLink, "&", "&amp;") }

func TestCompose_Duration(t *testing.T) {
	t.Parallel()
	for seconds, want := range map[int]string{0: "0:00", 5: "0:05", 60: "1:00", 75: "1:15", 119: "1:59", 600: "10:00", 3661: "61:01"} {
		m := mustCompose(t, testVoicemail(callrelay.TranscriptOff, nil, seconds), "callrelay@localhost", audio{note: "n"})
		if !strings.Contains(m.Text, "Duration: "+want+"\n") || !strings.Contains(m.HTML, ">"+want+"</td>") || !strings.Contains(m.Subject, "("+want+")") {
			t.Errorf("%d s: duration not shown as %s:\n%s", seconds, want, m.Text)
		}
	}
}

func TestCompose_NoTranscript(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		status     string
		transcript *string
		want       string
	}{
		{"pending", callrelay.TranscriptPending, nil, callrelay.TranscriptReason(callrelay.TranscriptPending)},
		{"failed", callrelay.TranscriptFailed, nil, callrelay.TranscriptReason(callrelay.TranscriptFailed)},
		{"off", callrelay.TranscriptOff, nil, callrelay.TranscriptReason(callrelay.TranscriptOff)},
		{"language", callrelay.TranscriptLanguage, nil, callrelay.TranscriptReason(callrelay.TranscriptLanguage)},
		{"too short", callrelay.TranscriptTooShort, nil, callrelay.TranscriptReason(callrelay.TranscriptTooShort)},
		{"too long", callrelay.TranscriptTooLong, nil, callrelay.TranscriptReason(callrelay.TranscriptTooLong)},
		{"completed, empty", callrelay.TranscriptCompleted, str(""), "Twilio heard no words in this message."},
		{"completed, blank", callrelay.TranscriptCompleted, str(" \n "), "Twilio heard no words in this message."},
		{"completed, nil", callrelay.TranscriptCompleted, nil, "Twilio heard no words in this message."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want == "" {
				t.Fatalf("TranscriptReason(%q) is empty: the email would not say why", tc.status)
			}
			m := mustCompose(t, testVoicemail(tc.status, tc.transcript, 30), "callrelay@localhost", audio{data: []byte("x"), contentType: "audio/mpeg"})
			if !strings.Contains(m.Text, "No transcript: "+tc.want) {
				t.Errorf("text part lacks %q:\n%s", tc.want, m.Text)
			}
			if !strings.Contains(m.HTML, "No transcript: "+tc.want) {
				t.Errorf("HTML part lacks %q:\n%s", tc.want, m.HTML)
			}
			if !strings.HasPrefix(m.Text, "No transcript: "+tc.want) {
				t.Errorf("text part does not open with why there is no transcript:\n%s", m.Text)
			}
			if strings.Contains(m.Text, "“") || strings.Contains(m.HTML, "&ldquo;") || strings.Contains(m.Subject, "“") {
				t.Errorf("email shows a transcript: %q\n%s", m.Subject, m.Text)
			}
		})
	}
}

func TestCompose_Attachment(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		a        audio
		wantFile string // "" for none
		wantNote string
	}{
		{"mp3", audio{data: []byte("a"), contentType: "audio/mpeg"}, "voicemail-7.mp3", "The recording is attached."},
		{"wav", audio{data: []byte("a"), contentType: "audio/x-wav"}, "voicemail-7.wav", "The recording is attached."},
		{"too large", audio{note: "The recording is too large to attach; use the link."}, "", "too large to attach"},
		{"unavailable", audio{note: "The recording could not be attached; use the link."}, "", "could not be attached"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mustCompose(t, testVoicemail(callrelay.TranscriptOff, nil, 30), "callrelay@localhost", tc.a)
			var got string
			if len(m.Attachments) == 1 {
				got = m.Attachments[0].Filename
			}
			if len(m.Attachments) > 1 || got != tc.wantFile {
				t.Errorf("attachments = %+v, want %q", m.Attachments, tc.wantFile)
			}
			if !strings.Contains(m.Text, tc.wantNote) || !strings.Contains(m.HTML, tc.wantNote) {
				t.Errorf("email lacks %q:\n%s", tc.wantNote, m.Text)
			}
			if !strings.Contains(m.Text, testLink) {
				t.Errorf("text part lacks the link:\n%s", m.Text)
			}
		})
	}
}

func TestCompose_MessageID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ from, want string }{
		{"Callrelay <callrelay@example.com>", "<voicemail-7.RE0123456789abcdef@example.com>"},
		{"callrelay@mail.example.org", "<voicemail-7.RE0123456789abcdef@mail.example.org>"},
		{"callrelay@localhost", "<voicemail-7.RE0123456789abcdef@localhost>"},
	} {
		vm := testVoicemail(callrelay.TranscriptOff, nil, 30)
		first := mustCompose(t, vm, tc.from, audio{note: "n"})
		again := mustCompose(t, vm, tc.from, audio{data: []byte("retry with audio"), contentType: "audio/mpeg"})
		if first.MessageID != tc.want || again.MessageID != tc.want {
			t.Errorf("from %q: Message-ID %q then %q, want %q both times", tc.from, first.MessageID, again.MessageID, tc.want)
		}
		other := *vm
		other.ID, other.RecordingSid = 8, "RE9"
		if m := mustCompose(t, &other, tc.from, audio{note: "n"}); m.MessageID == tc.want {
			t.Errorf("two voicemails share Message-ID %q", m.MessageID)
		}
	}
}

func TestCompose_Callers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		from       string
		callerName *string
		subject    string // want
		textFrom   string // the text part's From line
		href       string // the HTML's tel: link; "" for none
	}{
		{"same country", "+15559870000", nil, "Voicemail from (555) 987-0000 (0:30)", "From:     (555) 987-0000\n", `href="tel:&#43;15559870000"`},
		{"another country", "+442079460000", nil, "Voicemail from +44 20 7946 0000 (0:30)", "From:     +44 20 7946 0000\n", `href="tel:&#43;442079460000"`},
		{"caller name", "+15559870000", str("JOHN SMITH"), "Voicemail from JOHN SMITH, (555) 987-0000 (0:30)", "From:     JOHN SMITH, (555) 987-0000\n", `href="tel:&#43;15559870000"`},
		{"caller name with bidi and controls", "+15559870000", str("\u202eHTIMS\u202c NHOJ\x1b[31m"), "Voicemail from HTIMS NHOJ[31m, (555) 987-0000 (0:30)", "From:     HTIMS NHOJ[31m, (555) 987-0000\n", `href="tel:&#43;15559870000"`},
		{"caller name that is the number", "+15559870000", str("+1 555 987 0000"), "Voicemail from (555) 987-0000 (0:30)", "From:     (555) 987-0000\n", `href="tel:&#43;15559870000"`},
		{"empty From", "", nil, "Voicemail from Withheld number (0:30)", "From:     Withheld number\n", ""},
		{"anonymous sentinel", "+266696687", nil, "Voicemail from Withheld number (0:30)", "From:     Withheld number\n", ""},
		{"restricted sentinel", "+7378742833", nil, "Voicemail from Withheld number (0:30)", "From:     Withheld number\n", ""},
		{"Anonymous word", "Anonymous", str("Anonymous"), "Voicemail from Withheld number (0:30)", "From:     Withheld number\n", ""},
		{"withheld with a name", "+266696687", str("ACME CORP"), "Voicemail from ACME CORP (0:30)", "From:     ACME CORP, Withheld number\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vm := testVoicemail(callrelay.TranscriptOff, nil, 30)
			vm.From, vm.CallerName = tc.from, tc.callerName
			m := mustCompose(t, vm, "callrelay@localhost", audio{note: "n"})
			if m.Subject != tc.subject {
				t.Errorf("Subject = %q, want %q", m.Subject, tc.subject)
			}
			if !strings.Contains(m.Text, tc.textFrom) {
				t.Errorf("text part lacks %q:\n%s", tc.textFrom, m.Text)
			}
			if tc.href == "" && strings.Contains(m.HTML, "tel:") {
				t.Errorf("HTML part links a withheld caller:\n%s", m.HTML)
			}
			if tc.href != "" && !strings.Contains(m.HTML, tc.href) {
				t.Errorf("HTML part lacks %s:\n%s", tc.href, m.HTML)
			}
			for _, bad := range []string{"\u202e", "\u202c", "\x1b"} {
				if strings.Contains(m.Subject, bad) || strings.Contains(m.Text, bad) || strings.Contains(m.HTML, bad) {
					t.Errorf("email carries %q", bad)
				}
			}
		})
	}
}

// The Subject carries the start of the transcript, cut at a word, without the characters that
// could reorder or hide it; the preheader carries more of it.
func TestCompose_LongTranscript(t *testing.T) {
	t.Parallel()
	words := "Hi Dana, this is Sam from the garage\u202e about your car: the brakes are done and you can pick it up any time before six tonight, thanks."
	m := mustCompose(t, testVoicemail(callrelay.TranscriptCompleted, str(words), 40), "callrelay@localhost", audio{note: "n"})
	want := "Voicemail from (555) 987-0000 (0:40): “Hi Dana, this is Sam from the garage about your car: the…”"
	if m.Subject != want {
		t.Errorf("Subject = %q, want %q", m.Subject, want)
	}
	if !strings.Contains(m.HTML, "(555) 987-0000: “Hi Dana, this is Sam from the garage about your car: the brakes are done and you can pick it up any time before six tonight, thanks.”") {
		t.Errorf("preheader lacks the transcript:\n%s", m.HTML)
	}
}

func TestComposeFollowUp(t *testing.T) {
	t.Parallel()
	vm := testVoicemail(callrelay.TranscriptCompleted, str("Call me <back>."), 30)
	first := mustCompose(t, testVoicemail(callrelay.TranscriptPending, nil, 30), "Voicemail <vm@example.com>", audio{note: "n"})
	m, err := composeFollowUp(vm, testEnvelope("Voicemail <vm@example.com>"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mail.Render(m); err != nil {
		t.Fatalf("the follow-up does not render: %v", err)
	}
	if m.Subject != "Re: "+first.Subject {
		t.Errorf("Subject = %q, want %q: the first email's, as a reply", m.Subject, "Re: "+first.Subject)
	}
	if m.Headers["In-Reply-To"] != first.MessageID || m.Headers["References"] != first.MessageID || m.Headers["Auto-Submitted"] != "auto-generated" {
		t.Errorf("headers = %v, want In-Reply-To and References %s", m.Headers, first.MessageID)
	}
	if want := "<voicemail-7.RE0123456789abcdef.transcript@example.com>"; m.MessageID != want || m.MessageID == first.MessageID {
		t.Errorf("Message-ID = %q, want %q", m.MessageID, want)
	}
	if !m.Date.Equal(sentAt) || m.To != vm.OwnerEmail || m.From != "Voicemail <vm@example.com>" {
		t.Errorf("Date %v To %q From %q", m.Date, m.To, m.From)
	}
	if !strings.Contains(m.Text, `"Call me <back>."`) || !strings.Contains(m.Text, testLink) ||
		!strings.Contains(m.HTML, "Call me &lt;back&gt;.") || !strings.Contains(m.HTML, `href="`+testLinkHTML()+`"`) {
		t.Errorf("follow-up lacks the transcript or the link:\n%s\n%s", m.Text, m.HTML)
	}
	if len(m.Attachments) != 0 {
		t.Errorf("follow-up attaches %d files, want none: the first email has the audio", len(m.Attachments))
	}
	if _, err := composeFollowUp(testVoicemail(callrelay.TranscriptCompleted, str(" "), 30), testEnvelope("a@b.c")); err == nil {
		t.Error("follow-up composed for an empty transcript")
	}
}

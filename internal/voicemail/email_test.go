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

const testLink = "https://callrelay.example.com/voicemails/7/audio?expires=1795348800&sig=abc-_DEF"

// recordedAt is when the test voicemail was recorded, in New York's winter zone: the email
// shows it in UTC. linkExpires is when its link expires.
var (
	recordedAt  = clocktest.Start().In(time.FixedZone("EST", -5*3600))
	linkExpires = recordedAt.Add(30 * 24 * time.Hour)
)

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
	m, err := compose(vm, from, testLink, linkExpires, a)
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
	if want := "Voicemail from +15559870000 (1:15)"; m.Subject != want {
		t.Errorf("Subject = %q, want %q", m.Subject, want)
	}
	if want := recordedAt; !m.Date.Equal(want) || m.Date.Location() != time.UTC {
		t.Errorf("Date = %v, want %v", m.Date, want)
	}
	if m.Headers["X-Callrelay-Voicemail"] != "7" || m.Headers["X-Callrelay-Call"] != "CA1" {
		t.Errorf("headers = %v, want the voicemail and call", m.Headers)
	}
	for _, want := range []string{
		"+15559870000", "+15551230000", recordedAt.UTC().Format("Mon, 2 Jan 2006 15:04:05 MST"), "1:15",
		`Hi Dana, call me back <soon> & "thanks"`, testLink, linkExpires.UTC().Format("2 Jan 2006"), "The recording is attached.",
	} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("text part lacks %q:\n%s", want, m.Text)
		}
	}
	// html/template escapes + too: &#43;15559870000 shows as +15559870000.
	for _, want := range []string{
		"&#43;15559870000", "&#43;15551230000", recordedAt.UTC().Format("Mon, 2 Jan 2006 15:04:05 MST"), "1:15",
		"Hi Dana, call me back &lt;soon&gt; &amp; &#34;thanks&#34;",
		`href="` + strings.ReplaceAll(testLink, "&", "&amp;") + `"`, "The recording is attached.",
	} {
		if !strings.Contains(m.HTML, want) {
			t.Errorf("HTML part lacks %q:\n%s", want, m.HTML)
		}
	}
	if strings.Contains(m.HTML, "<soon>") {
		t.Errorf("HTML part has the transcript unescaped:\n%s", m.HTML)
	}
	if strings.Contains(m.Text, "No transcript") || strings.Contains(m.HTML, "No transcript") {
		t.Errorf("email says there is no transcript:\n%s", m.Text)
	}
	if len(m.Attachments) != 1 || m.Attachments[0].Filename != "voicemail-7.mp3" ||
		m.Attachments[0].ContentType != "audio/mpeg" || !bytes.Equal(m.Attachments[0].Data, []byte("ID3 audio")) {
		t.Errorf("attachments = %+v, want voicemail-7.mp3", m.Attachments)
	}
}

func TestCompose_Duration(t *testing.T) {
	t.Parallel()
	for seconds, want := range map[int]string{0: "0:00", 5: "0:05", 60: "1:00", 75: "1:15", 119: "1:59", 600: "10:00", 3661: "61:01"} {
		m := mustCompose(t, testVoicemail(callrelay.TranscriptOff, nil, seconds), "callrelay@localhost", audio{note: "n"})
		if !strings.Contains(m.Text, "Duration: "+want+"\n") || !strings.Contains(m.HTML, "<td>"+want+"</td>") {
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
			if strings.Contains(m.Text, "Transcript:") || strings.Contains(m.HTML, "<h3>Transcript</h3>") {
				t.Errorf("email shows a transcript section:\n%s", m.Text)
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

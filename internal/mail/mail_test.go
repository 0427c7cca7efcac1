package mail_test

import (
	"bytes"
	"errors"
	netmail "net/mail"
	"strings"
	"testing"
	"time"

	"github.com/callrelay/callrelay/internal/mail"
)

func TestNew(t *testing.T) {
	s, err := mail.New("", t.TempDir(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*mail.Dir); !ok {
		t.Errorf(`New("") = %T, want *mail.Dir`, s)
	}

	s, err = mail.New("smtp://user:pass@mail.example.com:587", "", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*mail.SMTP); !ok {
		t.Errorf("New(smtp://…) = %T, want *mail.SMTP", s)
	}
	s, err = mail.New("smtps://mail.example.com", "", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*mail.SMTP); !ok {
		t.Errorf("New(smtps://…) = %T, want *mail.SMTP", s)
	}

	if _, err := mail.New("", "", time.Second); err == nil {
		t.Error(`New("", "") succeeded`)
	}

	for _, bad := range []string{
		"http://mail.example.com",
		"mail.example.com:587",
		"smtp:mail.example.com",
		"smtp://",
		"smtp://mail.example.com:0",
		"smtp://mail.example.com/path",
		"smtp://mail.example.com?tls=no",
	} {
		if _, err := mail.New(bad, "", time.Second); err == nil {
			t.Errorf("New(%q) succeeded", bad)
		}
	}

	// Errors never repeat the password, however the URL is broken.
	const secret = "hunter2"
	for _, bad := range []string{
		"http://user:hunter2@mail.example.com",
		"smtp://user:hunter2@mail.example.com:notaport",
		"smtp://user:hunter2", // no '@': url reads the password as a port
		"smtp://user:hunter2@mail.example.com:99999",
		"smtp://user:hunter2%zz@mail.example.com", // bad escape
		"smtp://user:hunter2@mail.exa mple.com",
		"smtp://user:hunter2@mail.example.com/x?y",
		"smtp://user:hunter2@\x7fmail.example.com",
		"smtp://user:hunter2@",
	} {
		_, err := mail.New(bad, "", time.Second)
		if err == nil {
			t.Errorf("New(%q) succeeded", bad)
			continue
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "hunt") {
			t.Errorf("New(%q) error shows the password: %v", bad, err)
		}
	}
}

func TestRender(t *testing.T) {
	m, _ := voicemail()
	a, err := mail.Render(m)
	if err != nil {
		t.Fatal(err)
	}
	b, err := mail.Render(m)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("Render is not deterministic")
	}
	checkVoicemail(t, a)
	if bytes.Contains(a, []byte("\n")) && bytes.Count(a, []byte("\r\n")) != bytes.Count(a, []byte("\n")) {
		t.Error("Render has bare LF line endings")
	}

	m.Text = "other"
	c, _ := mail.Render(m)
	if bytes.Equal(a, c) {
		t.Error("different messages render the same")
	}

	// Text only: no multipart at all.
	plain := mail.Message{From: "a@example.com", To: "b@example.com", Subject: "hi", Text: "hello", MessageID: "x@y", Date: time.Unix(0, 0).UTC()}
	p, err := mail.Render(plain)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(p, []byte("multipart")) || !bytes.Contains(p, []byte("text/plain; charset=UTF-8")) {
		t.Errorf("text-only message:\n%s", p)
	}
}

func TestRender_Invalid(t *testing.T) {
	for name, mutate := range map[string]func(*mail.Message){
		"no from":          func(m *mail.Message) { m.From = "" },
		"bad from":         func(m *mail.Message) { m.From = "not an address" },
		"no to":            func(m *mail.Message) { m.To = "" },
		"no date":          func(m *mail.Message) { m.Date = time.Time{} },
		"bad message id":   func(m *mail.Message) { m.MessageID = "<no at sign>" },
		"reserved header":  func(m *mail.Message) { m.Headers = map[string]string{"subject": "x"} },
		"header injection": func(m *mail.Message) { m.Headers = map[string]string{"X-A": "1\r\nBcc: evil@example.com"} },
		"bad header name":  func(m *mail.Message) { m.Headers = map[string]string{"X A": "1"} },
		"bad content type": func(m *mail.Message) { m.Attachments[0].ContentType = "audio/mpeg\r\nX-Evil: 1" },
		"no filename":      func(m *mail.Message) { m.Attachments[0].Filename = "" },
	} {
		t.Run(name, func(t *testing.T) {
			m, _ := voicemail()
			mutate(&m)
			_, err := mail.Render(m)
			if !errors.Is(err, mail.ErrInvalidMessage) || !mail.IsPermanent(err) {
				t.Errorf("err = %v, want a permanent ErrInvalidMessage", err)
			}
		})
	}
	if mail.IsPermanent(nil) {
		t.Error("IsPermanent(nil)")
	}
}

// The headers of an automatic email and of a reply pass through as extra headers: RFC 3834's
// Auto-Submitted, and In-Reply-To and References that thread a follow-up under its email.
func TestRender_AutomaticReply(t *testing.T) {
	m := mail.Message{From: "Voicemail <vm@example.com>", To: "b@example.com", Subject: "Re: hi", Text: "hello",
		MessageID: "<two@example.com>", Date: time.Unix(0, 0).UTC(), Headers: map[string]string{
			"Auto-Submitted": "auto-generated", "In-Reply-To": "<one@example.com>", "References": "<one@example.com>",
		}}
	raw, err := mail.Render(m)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"Auto-Submitted": "auto-generated", "In-Reply-To": "<one@example.com>", "References": "<one@example.com>",
		"Message-Id": "<two@example.com>", "From": `"Voicemail" <vm@example.com>`,
	} {
		if got := msg.Header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

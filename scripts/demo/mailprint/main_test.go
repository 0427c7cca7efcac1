package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/callrelay/callrelay/internal/mail"
)

// The demo's email, rendered by callrelay's own renderer: the long audio link is folded and
// its = written =3D by quoted-printable; printed, it is whole on one line.
func TestPrintMessage_DecodesTheLink(t *testing.T) {
	link := "http://localhost:8080/voicemails/1/audio?expires=1799148624&sig=xAzabb9qAoG00S0l_u0clNKQInuvLGOfCAWXdfc55QE"
	raw, err := mail.Render(mail.Message{
		From: "callrelay@localhost", To: "dana@example.com", Subject: "Voicemail from +15559870000 (0:09) — Élise",
		Text:      "New voicemail\n\nTranscript:\nHi Dana, it's Sam.\n\nListen: " + link + "\nThe recording is attached.\n",
		HTML:      "<p>New voicemail</p><p><a href=\"" + link + "\">Listen</a></p>",
		Date:      time.Now(),
		MessageID: "<voicemail-1@localhost>",
		Headers:   map[string]string{"X-Callrelay-Voicemail": "1"},
		Attachments: []mail.Attachment{{Filename: "voicemail-1.mp3", ContentType: "audio/mpeg",
			Data: bytes.Repeat([]byte{0xff, 0xfb, 0x90}, 1000)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(link)) {
		t.Fatalf("the rendered message has the link whole already; this test shows nothing:\n%s", raw)
	}
	var out bytes.Buffer
	if err := printMessage(&out, bytes.NewReader(raw)); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"\nListen: " + link + "\n",
		"Subject: Voicemail from +15559870000 (0:09) — Élise\n",
		"X-Callrelay-Voicemail: 1\n",
		"[attachment: voicemail-1.mp3, audio/mpeg, 3000 bytes]\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	for _, unwanted := range []string{"=3D", "<p>", "Content-Transfer-Encoding", "\r"} {
		if strings.Contains(got, unwanted) {
			t.Errorf("output has %q (raw MIME, the HTML part or CRLF):\n%s", unwanted, got)
		}
	}
}

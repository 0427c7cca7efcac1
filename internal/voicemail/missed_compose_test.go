package voicemail

import (
	"html"
	"strings"
	"testing"
	"time"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/clocktest"
	"github.com/callrelay/callrelay/internal/mail"
)

// TestComposeMissed: the missed-call email reads like the voicemail email: the caller's name or
// number for people (withheld callers get no link), times in the owner's zone, no control or
// bidi characters in the Subject, Date the sending time.
func TestComposeMissed(t *testing.T) {
	t.Parallel()
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	started := clocktest.Start()
	sent := started.Add(3 * time.Minute)
	for _, tc := range []struct {
		name, from, callerName string
		wantSubject, wantHref  string
	}{
		{"national", "+15559870000", "", "Missed call from (555) 987-0000", `href="tel:+15559870000"`},
		{"international", "+442079460000", "", "Missed call from +44 20 7946 0000", `href="tel:+442079460000"`},
		{"withheld", "+266696687", "", "Missed call from Withheld number", ""},
		{"empty", "", "", "Missed call from Withheld number", ""},
		{"named, bidi stripped", "+15559870000", "JOHN\u202eSMITH", "Missed call from JOHNSMITH", `href="tel:+15559870000"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mc := &callrelay.MissedCall{CallSid: "CA1", Number: "+15551230000", From: tc.from, OwnerEmail: "dana@example.com",
				Stage: callrelay.StageRinging, StartedAt: started, EndedAt: started.Add(20 * time.Second), WaitedSeconds: 20,
				CallerName: tc.callerName}
			m, err := composeMissed(mc, "Voicemail <vm@example.com>", sent, paris)
			if err != nil {
				t.Fatal(err)
			}
			if m.Subject != tc.wantSubject {
				t.Errorf("Subject = %q, want %q", m.Subject, tc.wantSubject)
			}
			if !m.Date.Equal(sent) || m.Date.Location() != paris {
				t.Errorf("Date = %v, want the sending time %v in Europe/Paris", m.Date, sent)
			}
			if want := started.In(paris).Format("Mon, 2 Jan 2006 15:04 MST"); !strings.Contains(m.Text, want) || !strings.Contains(m.HTML, want) {
				t.Errorf("the email does not show the start in the owner's zone (%s):\n%s", want, m.Text)
			}
			if tc.wantHref != "" && !strings.Contains(html.UnescapeString(m.HTML), tc.wantHref) {
				t.Errorf("HTML lacks the call-back link %s:\n%s", tc.wantHref, m.HTML)
			}
			if tc.wantHref == "" && strings.Contains(m.HTML, "tel:") {
				t.Errorf("a withheld caller got a tel: link:\n%s", m.HTML)
			}
			for _, want := range []string{`<html lang="en">`, `name="viewport"`, "<title>"} {
				if !strings.Contains(m.HTML, want) {
					t.Errorf("HTML lacks %s", want)
				}
			}
			if m.Headers["Auto-Submitted"] != "auto-generated" {
				t.Errorf("headers = %v, want Auto-Submitted", m.Headers)
			}
			if _, err := mail.Render(m); err != nil {
				t.Errorf("does not render: %v", err)
			}
		})
	}
}

package app_test

import (
	"context"
	"mime"
	"strings"
	"testing"
	"time"

	"github.com/callrelay/callrelay/internal/app"
	"github.com/callrelay/callrelay/internal/config"
	"github.com/callrelay/callrelay/internal/mail/mailtest"
	"github.com/callrelay/callrelay/internal/twiliosim"
)

// The whole callrelay, as `serve` assembles it from its configuration: CALLRELAY_TIME_ZONE is
// the zone of the email's times and Date, CALLRELAY_MAIL_FROM's display name is the sender.
func TestVoicemailEmail_Configured(t *testing.T) {
	t.Parallel()
	chicago, err := time.LoadLocation("America/Chicago")
	if err != nil {
		t.Fatal(err)
	}
	r := startRelay(t, func(cfg *config.Config, _ *app.Options) {
		cfg.TimeZone = config.Zone{Location: chicago}
		cfg.MailFrom = "Voicemail <vm@relay.example.com>"
	})
	sim, smtp := r.sim, r.smtp

	sc, err := twiliosim.LoadScenario("../../testdata/scenarios/voicemail-transcribed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := sim.Run(ctx, sc, 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() {
		var b strings.Builder
		res.Print(&b)
		t.Fatalf("scenario failed:\n%s", b.String())
	}
	e := mailtest.Parse(t, smtp.Next(15*time.Second).Data)
	if got := e.Header.Get("From"); got != `"Voicemail" <vm@relay.example.com>` {
		t.Errorf("From = %q, want the display name and address", got)
	}
	date, err := e.Header.Date()
	if err != nil {
		t.Fatal(err)
	}
	if _, off := date.Zone(); off != -6*3600 && off != -5*3600 {
		t.Errorf("Date %v: want Chicago's offset", date)
	}
	zone, _ := date.In(chicago).Zone() // CST or CDT
	if !strings.Contains(e.Text, " "+zone+"\r\n") {
		t.Errorf("text part shows no time in %s:\n%s", zone, e.Text)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(e.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "Voicemail from (555) 987-0000 (0:09): “Hi Dana, it's Sam. Call me back about the lease on Elm…”"; subject != want {
		t.Errorf("Subject = %q, want %q", subject, want)
	}
	if got := e.Header.Get("Auto-Submitted"); got != "auto-generated" {
		t.Errorf("Auto-Submitted = %q", got)
	}
}

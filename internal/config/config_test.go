package config_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/callrelay/callrelay/internal/config"
)

// setenv sets a working environment plus the overrides; "" unsets a variable.
func setenv(t *testing.T, overrides map[string]string) {
	t.Helper()
	env := map[string]string{
		"DATABASE_URL": "postgres://127.0.0.1:5432/callrelay", "TWILIO_AUTH_TOKEN": "testtoken123",
		"CALLRELAY_ADDR": "", "CALLRELAY_PUBLIC_URL": "", "TWILIO_API_URL": "", "TWILIO_ACCOUNT_SID": "",
		"CALLRELAY_OPS_TOKEN": "", "SMTP_URL": "", "CALLRELAY_MAIL_FROM": "", "CALLRELAY_MAIL_DIR": "",
		"CALLRELAY_TRANSCRIPT_WAIT": "", "CALLRELAY_HOLD_MUSIC_URL": "", "CALLRELAY_LINK_SECRET": "",
		"CALLRELAY_INSECURE_SKIP_SIGNATURE": "", "CALLRELAY_TIME_ZONE": "", "CALLRELAY_EVENT_WEBHOOKS": "", "CALLRELAY_EVENT_SECRET": "",
		"CALLRELAY_EVENT_ALLOW_PRIVATE": "", "CALLRELAY_MISSED_CALL_DELAY": "",
	}
	for k, v := range overrides {
		env[k] = v
	}
	for k, v := range env {
		t.Setenv(k, v) // restores the old value after the test
		if v == "" {
			unsetenv(t, k)
		}
	}
}

func TestLoad_OK(t *testing.T) {
	setenv(t, nil)
	c, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, got, want string }{
		{"Addr", c.Addr, ":8080"},
		{"PublicURL", c.PublicURL.String(), "http://localhost:8080"},
		{"TwilioAPIURL", c.TwilioAPIURL.String(), "https://api.twilio.com"},
		{"MailFrom", c.MailFrom, "callrelay@localhost"},
		{"MailDir", c.MailDir, ".data/mail"},
		{"SpoolDir", c.SpoolDir, ".data/spool"},
		{"HoldMusicURL", c.HoldMusicURL.String(), ""},
		{"TimeZone", c.TimeZone.String(), "UTC"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %q, want %q", tc.name, tc.got, tc.want)
		}
	}
	if c.TranscriptWait != 90*time.Second {
		t.Errorf("TranscriptWait = %v, want 90s", c.TranscriptWait)
	}
	if c.InsecureSkipSignature {
		t.Errorf("InsecureSkipSignature = true, want false by default")
	}
	if c.MissedCallDelay != 2*time.Minute {
		t.Errorf("MissedCallDelay = %v, want 2m by default", c.MissedCallDelay)
	}
	if c.LinkSecret.Value() == "" || c.LinkSecret.Value() == c.TwilioAuthToken.Value() {
		t.Errorf("LinkSecret = %q, want derived from, and different to, the auth token", c.LinkSecret.Value())
	}
}

func TestLoad_Overrides(t *testing.T) {
	setenv(t, map[string]string{
		"CALLRELAY_PUBLIC_URL": "https://relay.example.com", "CALLRELAY_TRANSCRIPT_WAIT": "2m",
		"SMTP_URL": "smtps://u:p@mail.example.com:465", "CALLRELAY_LINK_SECRET": "linkkey",
		"CALLRELAY_HOLD_MUSIC_URL": "https://cdn.example.com/hold.mp3",
		"CALLRELAY_TIME_ZONE":      "America/New_York", "CALLRELAY_MAIL_FROM": "Voicemail <vm@example.com>",
	})
	c, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.TimeZone.Location == nil || c.TimeZone.Location.String() != "America/New_York" || c.MailFrom != "Voicemail <vm@example.com>" {
		t.Errorf("TimeZone %v, MailFrom %q: want the overrides", c.TimeZone, c.MailFrom)
	}
	if c.PublicURL.Host != "relay.example.com" || c.TranscriptWait != 2*time.Minute || c.LinkSecret.Value() != "linkkey" {
		t.Errorf("got %v %v %q, want the overrides", c.PublicURL, c.TranscriptWait, c.LinkSecret.Value())
	}
}

func TestLoad_ErrInvalid(t *testing.T) {
	for _, tc := range []struct {
		env     map[string]string
		wantVar string
	}{
		{map[string]string{"TWILIO_AUTH_TOKEN": ""}, "TWILIO_AUTH_TOKEN"},
		{map[string]string{"CALLRELAY_TRANSCRIPT_WAIT": "ninety"}, "CALLRELAY_TRANSCRIPT_WAIT"},
		{map[string]string{"CALLRELAY_TRANSCRIPT_WAIT": "-1s"}, "CALLRELAY_TRANSCRIPT_WAIT"},
		{map[string]string{"CALLRELAY_MISSED_CALL_DELAY": "0s"}, "CALLRELAY_MISSED_CALL_DELAY"},
		{map[string]string{"CALLRELAY_MISSED_CALL_DELAY": "2h"}, "CALLRELAY_MISSED_CALL_DELAY"},
		{map[string]string{"CALLRELAY_PUBLIC_URL": "relay.example.com"}, "CALLRELAY_PUBLIC_URL"},
		{map[string]string{"CALLRELAY_PUBLIC_URL": "http://%zz"}, "CALLRELAY_PUBLIC_URL"},
		{map[string]string{"TWILIO_API_URL": "ftp://api.twilio.com"}, "TWILIO_API_URL"},
		{map[string]string{"CALLRELAY_HOLD_MUSIC_URL": "/hold.mp3"}, "CALLRELAY_HOLD_MUSIC_URL"},
		{map[string]string{"SMTP_URL": "mail.example.com:25"}, "SMTP_URL"},
		{map[string]string{"DATABASE_URL": ""}, "DATABASE_URL"},
		{map[string]string{"DATABASE_URL": "postgres://u:hunter2@[::1"}, "DATABASE_URL"},
		{map[string]string{"CALLRELAY_INSECURE_SKIP_SIGNATURE": "maybe"}, "CALLRELAY_INSECURE_SKIP_SIGNATURE"},
		{map[string]string{"CALLRELAY_PUBLIC_URL": "="}, "CALLRELAY_PUBLIC_URL"},
		{map[string]string{"CALLRELAY_TIME_ZONE": "Mars/Olympus_Mons"}, "CALLRELAY_TIME_ZONE"},
		{map[string]string{"CALLRELAY_TIME_ZONE": "Local"}, "CALLRELAY_TIME_ZONE"},
		{map[string]string{"CALLRELAY_MAIL_FROM": "Voicemail"}, "CALLRELAY_MAIL_FROM"},
		{map[string]string{"CALLRELAY_MAIL_FROM": "Voicemail <vm@example.com"}, "CALLRELAY_MAIL_FROM"},
		{map[string]string{"CALLRELAY_MAIL_FROM": "a@example.com, b@example.com"}, "CALLRELAY_MAIL_FROM"},
	} {
		t.Run(fmt.Sprint(tc.env), func(t *testing.T) {
			setenv(t, tc.env)
			_, err := config.Load()
			if err == nil {
				t.Fatalf("Load = nil error, want one naming %s", tc.wantVar)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.wantVar) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line naming %s", msg, tc.wantVar)
			}
			if strings.Contains(msg, "hunter2") {
				t.Errorf("error %q leaks a password", msg)
			}
		})
	}
}

func TestLoad_InsecureWithoutToken(t *testing.T) {
	setenv(t, map[string]string{"TWILIO_AUTH_TOKEN": "", "CALLRELAY_INSECURE_SKIP_SIGNATURE": "true"})
	c, err := config.Load()
	if err != nil {
		t.Fatalf("Load = %v, want the insecure flag to allow a missing token", err)
	}
	if !c.InsecureSkipSignature {
		t.Errorf("InsecureSkipSignature = false, want true")
	}
}

func TestSecret_Redacted(t *testing.T) {
	c := config.Config{TwilioAuthToken: "supersecret", OpsToken: "opstoken", DatabaseURL: "postgres://u:dbpass@h/db"}
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", slog.Any("cfg", c), slog.Any("token", c.OpsToken))
	for name, out := range map[string]string{
		"fmt %v": fmt.Sprintf("%v", c), "fmt %+v": fmt.Sprintf("%+v", c), "json": string(js), "slog": logged.String(),
	} {
		for _, secret := range []string{"supersecret", "opstoken", "dbpass"} {
			if strings.Contains(out, secret) {
				t.Errorf("%s output shows %q: %s", name, secret, out)
			}
		}
	}
}

// unsetenv removes k for the rest of the test; t.Setenv has already arranged its restoration.
func unsetenv(t *testing.T, k string) {
	t.Helper()
	if err := os.Unsetenv(k); err != nil {
		t.Fatal(err)
	}
}

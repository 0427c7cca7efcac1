package config_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/callrelay/callrelay/internal/config"
)

// eventSecret is a valid whsec_ secret (the Standard Webhooks test vectors' key).
const eventSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func TestLoad_Events(t *testing.T) {
	setenv(t, map[string]string{
		"CALLRELAY_EVENT_WEBHOOKS":      " https://a.example.com/hooks , https://b.example.com/in?k=1,https://a.example.com/hooks",
		"CALLRELAY_EVENT_SECRET":        eventSecret,
		"CALLRELAY_EVENT_ALLOW_PRIVATE": "true",
	})
	c, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.EventWebhooks, " "); got != "https://a.example.com/hooks https://b.example.com/in?k=1" {
		t.Errorf("EventWebhooks = %q, want the two endpoints, trimmed, once each", got)
	}
	if !c.EventAllowPrivate || c.EventSecret.Value() != eventSecret || c.EventSecret.String() != "[redacted]" {
		t.Errorf("AllowPrivate %v, secret %q", c.EventAllowPrivate, c.EventSecret)
	}
}

func TestLoad_EventsInvalid(t *testing.T) {
	var eleven []string
	for i := range 11 {
		eleven = append(eleven, fmt.Sprintf("https://h%d.example.com/", i))
	}
	for _, tc := range []struct {
		env     map[string]string
		wantVar string
	}{
		{map[string]string{"CALLRELAY_EVENT_WEBHOOKS": "https://a.example.com/"}, "CALLRELAY_EVENT_SECRET"},
		{map[string]string{"CALLRELAY_EVENT_WEBHOOKS": "http://a.example.com/", "CALLRELAY_EVENT_SECRET": eventSecret}, "CALLRELAY_EVENT_WEBHOOKS"},
		{map[string]string{"CALLRELAY_EVENT_WEBHOOKS": strings.Join(eleven, ","), "CALLRELAY_EVENT_SECRET": eventSecret}, "CALLRELAY_EVENT_WEBHOOKS"},
		{map[string]string{"CALLRELAY_EVENT_SECRET": "hunter2hunter2hunter2hunter2hunter2"}, "CALLRELAY_EVENT_SECRET"},
		{map[string]string{"CALLRELAY_EVENT_SECRET": "whsec_aHVudGVyMg=="}, "CALLRELAY_EVENT_SECRET"},
		{map[string]string{"CALLRELAY_EVENT_ALLOW_PRIVATE": "perhaps"}, "CALLRELAY_EVENT_ALLOW_PRIVATE"},
	} {
		t.Run(fmt.Sprint(tc.env), func(t *testing.T) {
			setenv(t, tc.env)
			_, err := config.Load()
			if err == nil {
				t.Fatalf("Load = nil error, want one naming %s", tc.wantVar)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.wantVar) || strings.Contains(msg, "\n") || strings.Contains(msg, "hunter2") || strings.Contains(msg, "aHVudGVyMg") {
				t.Errorf("error %q: want one line naming %s, without the secret", msg, tc.wantVar)
			}
		})
	}
}

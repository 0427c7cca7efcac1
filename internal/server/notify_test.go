package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestNumbersAPI_Notify: a number's notify settings round-trip through the ops API, and a bad
// endpoint is a 400 naming it, with nothing written.
func TestNumbersAPI_Notify(t *testing.T) {
	s := newTestServer(t)
	path := "/api/numbers/" + url.PathEscape(masked)
	body := `{"owner_email":"dana@example.com","targets":[{"type":"phone","to":"+15550001111"}],
		"notify":{"missed_calls":false,"webhooks":["https://crm.example.com/in?team=1"]}}`
	if rec := s.api(http.MethodPut, path, body); rec.Code != http.StatusCreated {
		t.Fatalf("PUT = %d %s, want 201", rec.Code, rec.Body)
	}
	rec := s.api(http.MethodGet, path, "")
	var n struct {
		Notify *struct {
			MissedCalls bool     `json:"missed_calls"`
			Webhooks    []string `json:"webhooks"`
		} `json:"notify"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &n); err != nil || n.Notify == nil || n.Notify.MissedCalls ||
		len(n.Notify.Webhooks) != 1 || n.Notify.Webhooks[0] != "https://crm.example.com/in?team=1" {
		t.Fatalf("GET = %s, want the notify settings as sent", rec.Body)
	}
	bad := strings.Replace(body, "https://crm", "http://crm", 1)
	rec = s.api(http.MethodPut, path, bad)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `"field":"notify.webhooks[0]"`) {
		t.Errorf("PUT with an http endpoint = %d %s, want 400 naming notify.webhooks[0]", rec.Code, rec.Body)
	}
	if rec := s.api(http.MethodGet, path, ""); !strings.Contains(rec.Body.String(), "https://crm.example.com") {
		t.Errorf("a refused PUT changed the number: %s", rec.Body)
	}
}

package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// scheduled is a number open every hour but closed today (the test clock's UTC date, a
// holiday), after hours to voicemail with its own greeting and prompt, with caller policies.
func scheduled(extraAfterHours, callers string) string {
	today := t0.UTC().Format(time.DateOnly)
	var days []string
	for _, d := range []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"} {
		days = append(days, fmt.Sprintf(`%q: ["00:00-24:00"]`, d))
	}
	return `{"owner_email": "dana@example.com", "time_zone": "UTC", "targets": [{"type": "phone", "to": "+15550001111"}],
		"schedule": {"weekly": {` + strings.Join(days, ",") + `}, "exceptions": [{"date": "` + today + `", "name": "holiday"}]},
		"after_hours": {"greeting": "We are closed today.", "voicemail_prompt": "Leave a message."` + extraAfterHours + `}` + callers + `}`
}

// inboundEvent returns the detail of a call's inbound timeline entry.
func inboundEvent(t *testing.T, s *testServer, sid string) map[string]any {
	t.Helper()
	c := getCall(t, s, sid)
	events, _ := c["events"].([]any)
	for _, e := range events {
		if m, _ := e.(map[string]any); m["type"] == "inbound" {
			d, _ := m["detail"].(map[string]any)
			return d
		}
	}
	t.Fatalf("%s: no inbound entry in %v", sid, c["events"])
	return nil
}

func TestVoice_AfterHoursVoicemail(t *testing.T) {
	s := newTestServer(t)
	s.putNumber(masked, scheduled("", ""))
	const sid = "CA00000000000000000000000000001801"
	doc := twiml(t, s.twilio("/twilio/voice", inbound(sid)))
	if doc.Find("Dial") != nil || doc.Find("Record") == nil {
		t.Fatalf("after hours: verbs %v, want voicemail without ringing anyone", doc.ChildNames())
	}
	if say := doc.Find("Say"); say == nil || say.Text != "We are closed today. Leave a message." {
		t.Errorf("after hours prompt: %v, want the after-hours greeting and prompt", say)
	}
	d := inboundEvent(t, s, sid)
	if d["decision"] != "after_hours" || d["rule"] != "closed: exceptions "+t0.UTC().Format(time.DateOnly)+" (holiday)" {
		t.Errorf("inbound detail %v, want the after-hours decision and the holiday rule", d)
	}
	if st := getCall(t, s, sid)["status"]; st != "voicemail" {
		t.Errorf("status %v, want voicemail", st)
	}
	// The voicemail webhook reads the call's routing: the after-hours prompt again.
	if say := twiml(t, s.twilio("/twilio/voicemail", inbound(sid))).Find("Say"); say == nil || say.Text != "We are closed today. Leave a message." {
		t.Errorf("voicemail webhook prompt: %v", say)
	}
}

func TestVoice_AfterHoursOnCall(t *testing.T) {
	s := newTestServer(t)
	s.putNumber(masked, scheduled(`, "targets": [{"type": "phone", "to": "+15550002222"}]`, ""))
	const sid = "CA00000000000000000000000000001802"
	doc := twiml(t, s.twilio("/twilio/voice", inbound(sid)))
	dial := doc.Find("Dial")
	if dial == nil || len(dial.Children) != 1 || dial.Children[0].Text != "+15550002222" {
		t.Fatalf("after hours: %v, want the on-call phone dialed", doc.ChildNames())
	}
	if say := doc.Find("Say"); say == nil || say.Text != "We are closed today." {
		t.Errorf("after-hours greeting: %v", say)
	}
	// Nobody answers: voicemail with the after-hours prompt, from the call's routing.
	f := inbound(sid)
	f.Set("DialCallStatus", "no-answer")
	doc = twiml(t, s.twilio("/twilio/dial-outcome?attempt=0", f))
	if say := doc.Find("Say"); doc.Find("Record") == nil || say == nil || say.Text != "Leave a message." {
		t.Errorf("no answer after hours: %v, want voicemail with the after-hours prompt", doc.ChildNames())
	}
}

func TestVoice_CallerPolicies(t *testing.T) {
	s := newTestServer(t)
	s.putNumber(masked, `{"owner_email": "dana@example.com", "targets": [{"type": "phone", "to": "+15550001111"}],
		"callers": {"block": ["+1900"], "withheld": "voicemail"}}`)
	for _, tc := range []struct {
		sid, from, verb, decision, rule, status string
	}{
		{"CA00000000000000000000000000001803", "+19005550100", "Reject", "blocked", "callers.block +1900 reject", "completed"},
		{"CA00000000000000000000000000001804", "+266696687", "Record", "withheld", "callers.withheld voicemail", "voicemail"},
		{"CA00000000000000000000000000001805", "anonymous", "Record", "withheld", "callers.withheld voicemail", "voicemail"},
		{"CA00000000000000000000000000001806", caller, "Dial", "", "", "ringing"},
	} {
		f := inbound(tc.sid)
		f.Set("From", tc.from)
		doc := twiml(t, s.twilio("/twilio/voice", f))
		if doc.Find(tc.verb) == nil || (tc.verb != "Dial" && doc.Find("Dial") != nil) {
			t.Errorf("from %s: verbs %v, want %s", tc.from, doc.ChildNames(), tc.verb)
		}
		d := inboundEvent(t, s, tc.sid)
		if d["decision"] != nilOr(tc.decision) || d["rule"] != nilOr(tc.rule) {
			t.Errorf("from %s: inbound detail %v, want decision %q rule %q", tc.from, d, tc.decision, tc.rule)
		}
		if st := getCall(t, s, tc.sid)["status"]; st != tc.status {
			t.Errorf("from %s: status %v, want %s", tc.from, st, tc.status)
		}
	}

	// With the store down, the cached routing decides the same.
	twiml(t, s.twilio("/twilio/voice", inbound("CA00000000000000000000000000001807"))) // the cache holds the number's routing
	s.db.Pool().Close()
	f := inbound("CA00000000000000000000000000001808")
	f.Set("From", "+19005550100")
	if doc := twiml(t, s.twilio("/twilio/voice", f)); doc.Find("Reject") == nil {
		t.Errorf("store down, blocked caller: verbs %v, want Reject", doc.ChildNames())
	}
	if doc := twiml(t, s.twilio("/twilio/voice", inbound("CA00000000000000000000000000001809"))); doc.Find("Dial") == nil {
		t.Errorf("store down, other caller: verbs %v, want Dial", doc.ChildNames())
	}
}

func nilOr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func TestNumbersAPI_ScheduleState(t *testing.T) {
	s := newTestServer(t)
	s.putNumber(masked, scheduled("", ""))
	rec := s.api(http.MethodGet, "/api/numbers/"+url.PathEscape(masked), "")
	var n struct {
		TimeZone      string `json:"time_zone"`
		ScheduleState *struct {
			Open       bool       `json:"open"`
			Rule       string     `json:"rule"`
			NextChange *time.Time `json:"next_change"`
		} `json:"schedule_state"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &n); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("GET number: %d %s", rec.Code, rec.Body)
	}
	tomorrow := time.Date(t0.UTC().Year(), t0.UTC().Month(), t0.UTC().Day()+1, 0, 0, 0, 0, time.UTC)
	if st := n.ScheduleState; st == nil || st.Open || st.NextChange == nil || !st.NextChange.Equal(tomorrow) || n.TimeZone != "UTC" {
		t.Errorf("schedule_state %+v (%s), want closed until %s", st, rec.Body, tomorrow)
	}

	s.putNumber(masked, threeTargets)
	if rec := s.api(http.MethodGet, "/api/numbers/"+url.PathEscape(masked), ""); strings.Contains(rec.Body.String(), "schedule_state") {
		t.Errorf("a number without a schedule shows a schedule_state: %s", rec.Body)
	}
}

func TestNumbersAPI_ScheduleInvalid(t *testing.T) {
	s := newTestServer(t)
	base := `{"owner_email": "dana@example.com", "targets": [{"type": "phone", "to": "+15550001111"}], `
	for _, tc := range []struct{ body, field string }{
		{base + `"time_zone": "Nowhere/Land", "schedule": {"weekly": {}}}`, "time_zone"},
		{base + `"time_zone": "UTC", "schedule": {"weekly": {"mon": ["08:00-12:00", "11:30-13:00"]}}}`, "schedule.weekly.mon"},
		{base + `"time_zone": "UTC", "schedule": {"weekly": {"tue": ["8h-12h"]}}}`, "schedule.weekly.tue[0]"},
		{base + `"time_zone": "UTC", "schedule": {"weekly": {}, "exceptions": [{"date": "25/12/2026"}]}}`, "schedule.exceptions[0].date"},
		{base + `"callers": {"allow": ["+44 20"]}}`, "callers.allow[0]"},
	} {
		rec := s.api(http.MethodPut, "/api/numbers/"+url.PathEscape(masked), tc.body)
		var e struct {
			Error struct{ Code, Field string } `json:"error"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || rec.Code != http.StatusBadRequest || e.Error.Field != tc.field {
			t.Errorf("got %d %s, want 400 naming %s", rec.Code, rec.Body, tc.field)
		}
	}
	if rec := s.api(http.MethodGet, "/api/numbers/"+url.PathEscape(masked), ""); rec.Code != http.StatusNotFound {
		t.Errorf("an invalid PUT wrote the number: %d", rec.Code)
	}
}

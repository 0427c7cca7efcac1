package callrelay_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/clocktest"
)

// dentalJSON is the worked example of docs/design.md: open Mon–Fri 8–12 and 13–17, closed on
// the given holidays, after hours to voicemail.
func dentalJSON(holidays ...string) string {
	var ex []string
	for _, h := range holidays {
		ex = append(ex, fmt.Sprintf(`{"date": %q, "name": "holiday"}`, h))
	}
	return `{"owner_email": "desk@dental.example", "time_zone": "America/New_York",
		"targets": [{"type": "phone", "to": "+15550001111"}],
		"schedule": {"weekly": {"mon": ["08:00-12:00", "13:00-17:00"], "tue": ["08:00-12:00", "13:00-17:00"],
			"wed": ["08:00-12:00", "13:00-17:00"], "thu": ["08:00-12:00", "13:00-17:00"], "fri": ["08:00-12:00", "13:00-17:00"]},
			"exceptions": [` + strings.Join(ex, ",") + `]},
		"after_hours": {"greeting": "The office is closed.", "voicemail_prompt": "Leave a message and we will call you back."}}`
}

func errorField(err error) string {
	var e *callrelay.Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}

func mustRouting(t testing.TB, js string) callrelay.Routing {
	t.Helper()
	rt, err := callrelay.DecodeRouting(strings.NewReader(js))
	if err != nil {
		t.Fatalf("DecodeRouting: %v", err)
	}
	return rt
}

func zone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("zone %s: %v (the DST tests need the system's zone database)", name, err)
	}
	return loc
}

// nextWeekday is the wall time hh:mm of the first day after the test clock's today that is a
// wd in loc: a date relative to now, not a fixed day.
func nextWeekday(loc *time.Location, wd time.Weekday, hh, mm int) time.Time {
	now := clocktest.Now().In(loc)
	for d := 1; d <= 7; d++ {
		day := time.Date(now.Year(), now.Month(), now.Day()+d, hh, mm, 0, 0, loc)
		if day.Weekday() == wd {
			return day
		}
	}
	panic("unreachable")
}

func TestScheduleValidation(t *testing.T) {
	base := func(extra string) string {
		return `{"owner_email": "a@b.example", "targets": [{"type": "phone", "to": "+15550001111"}]` + extra + `}`
	}
	sched := func(weekly string, more ...string) string {
		return base(`, "time_zone": "Europe/Paris", "schedule": {"weekly": {` + weekly + `}` + strings.Join(more, "") + `}`)
	}
	cases := []struct{ name, body, field string }{
		{"overlap on a day", sched(`"mon": ["08:00-12:00", "11:00-13:00"]`), "schedule.weekly.mon"},
		{"overlap across midnight", sched(`"mon": ["22:00-02:00"], "tue": ["01:00-05:00"]`), "schedule.weekly.tue"},
		{"overlap across the week's end", sched(`"sun": ["01:00-05:00"], "sat": ["23:00-02:00"]`), "schedule.weekly.sat"},
		{"hour 25", sched(`"mon": ["08:00-25:00"]`), "schedule.weekly.mon[0]"},
		{"minute 60", sched(`"tue": ["08:60-09:00"]`), "schedule.weekly.tue[0]"},
		{"no leading zero", sched(`"mon": ["8:00-12:00"]`), "schedule.weekly.mon[0]"},
		{"empty range", sched(`"mon": ["12:00-12:00"]`), "schedule.weekly.mon[0]"},
		{"24:00 as a start", sched(`"mon": ["24:00-02:00"]`), "schedule.weekly.mon[0]"},
		{"too many ranges", sched(`"mon": ["00:00-01:00","01:00-02:00","02:00-03:00","03:00-04:00","04:00-05:00","05:00-06:00","06:00-07:00","07:00-08:00","08:00-09:00"]`), "schedule.weekly.mon"},
		{"unknown day", sched(`"monday": ["08:00-12:00"]`), "monday"},
		{"unknown zone", base(`, "time_zone": "Mars/Olympus", "schedule": {"weekly": {}}`), "time_zone"},
		{"Local is not a zone", base(`, "time_zone": "Local", "schedule": {"weekly": {}}`), "time_zone"},
		{"a path is not a zone", base(`, "time_zone": "../../etc/passwd", "schedule": {"weekly": {}}`), "time_zone"},
		{"schedule without zone", base(`, "schedule": {"weekly": {}}`), "time_zone"},
		{"bad exception date", sched(``, `, "exceptions": [{"date": "2026-02-30"}]`), "schedule.exceptions[0].date"},
		{"exception date twice", sched(``, `, "exceptions": [{"date": "2026-12-25"}, {"date": "2026-12-25"}]`), "schedule.exceptions[1].date"},
		{"exception hours overlap", sched(``, `, "exceptions": [{"date": "2026-12-24", "hours": ["08:00-12:00", "09:00-10:00"]}]`), "schedule.exceptions[0].hours"},
		{"exception bad hours", sched(``, `, "exceptions": [{"date": "2026-12-24", "hours": ["08:00"]}]`), "schedule.exceptions[0].hours[0]"},
		{"after_hours without schedule", base(`, "after_hours": {"greeting": "closed"}`), "after_hours"},
		{"after_hours bad target", base(`, "time_zone": "UTC", "schedule": {"weekly": {}}, "after_hours": {"targets": [{"type": "phone", "to": "555"}]}`), "after_hours.targets[0].to"},
		{"bad block prefix", base(`, "callers": {"block": ["1900"]}`), "callers.block[0]"},
		{"block prefix twice", base(`, "callers": {"block": ["+1900", "+1900"]}`), "callers.block[1]"},
		{"bad allow entry", base(`, "callers": {"allow": ["+0123"]}`), "callers.allow[0]"},
		{"bad blocked action", base(`, "callers": {"blocked": "hangup"}`), "callers.blocked"},
		{"blocked to voicemail without voicemail", base(`, "voicemail": {"enabled": false}, "callers": {"blocked": "voicemail"}`), "callers.blocked"},
		{"bad withheld action", base(`, "callers": {"withheld": "ask"}`), "callers.withheld"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := callrelay.DecodeRouting(strings.NewReader(tc.body))
			if callrelay.ErrorCode(err) != callrelay.EINVALID {
				t.Fatalf("err = %v, want EINVALID", err)
			}
			if f := errorField(err); f != tc.field {
				t.Errorf("field = %q, want %q (%v)", f, tc.field, err)
			}
		})
	}

	t.Run("too many block entries", func(t *testing.T) {
		list := make([]string, callrelay.MaxCallerPrefixes+1)
		for i := range list {
			list[i] = fmt.Sprintf(`"+1555%07d"`, i)
		}
		_, err := callrelay.DecodeRouting(strings.NewReader(base(`, "callers": {"block": [` + strings.Join(list, ",") + `]}`)))
		if f := errorField(err); f != "callers.block" {
			t.Errorf("field = %q (%v), want callers.block", f, err)
		}
	})

	t.Run("valid and defaults", func(t *testing.T) {
		rt := mustRouting(t, sched(`"fri": ["22:00-02:00"], "sat": ["10:00-24:00"], "sun": ["00:00-01:00"]`, `, "exceptions": [{"date": "2026-12-25"}]`))
		if rt.Schedule == nil || len(rt.Schedule.Weekly.Fri) != 1 {
			t.Fatalf("schedule = %+v", rt.Schedule)
		}
		rt = mustRouting(t, base(`, "callers": {"block": ["+1900"]}`))
		if rt.Callers.Blocked != callrelay.PolicyReject || rt.Callers.Withheld != callrelay.PolicyRing {
			t.Errorf("callers defaults = %+v", rt.Callers)
		}
	})
}

func TestScheduleOpenHours(t *testing.T) {
	ny := zone(t, "America/New_York")
	mon := nextWeekday(ny, time.Monday, 0, 0)
	// The Wednesday of mon's week (not the next Wednesday from today, which on a Monday or a
	// Tuesday comes before mon).
	holiday := mon.AddDate(0, 0, 2).Format(time.DateOnly)
	rt := mustRouting(t, dentalJSON(holiday))

	cases := []struct {
		name string
		at   time.Time
		open bool
		rule string
		next time.Time
	}{
		{"monday morning", mon.Add(9 * time.Hour), true, "weekly.mon 08:00-12:00", mon.Add(12 * time.Hour)},
		{"monday lunch", mon.Add(12*time.Hour + 30*time.Minute), false, "closed: weekly.mon", mon.Add(13 * time.Hour)},
		{"at opening", mon.Add(8 * time.Hour), true, "weekly.mon 08:00-12:00", mon.Add(12 * time.Hour)},
		{"at closing", mon.Add(17 * time.Hour), false, "closed: weekly.mon", mon.AddDate(0, 0, 1).Add(8 * time.Hour)},
		{"monday night", mon.Add(20*time.Hour + 30*time.Minute), false, "closed: weekly.mon", mon.AddDate(0, 0, 1).Add(8 * time.Hour)},
		{"holiday", mon.AddDate(0, 0, 2).Add(10 * time.Hour), false, "closed: exceptions " + holiday + " (holiday)", mon.AddDate(0, 0, 3).Add(8 * time.Hour)},
		{"friday evening to monday", mon.AddDate(0, 0, 4).Add(18 * time.Hour), false, "closed: weekly.fri", mon.AddDate(0, 0, 7).Add(8 * time.Hour)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := rt.ScheduleState(tc.at)
			if st.Open != tc.open || st.Rule != tc.rule {
				t.Errorf("at %s: open %v rule %q, want %v %q", tc.at, st.Open, st.Rule, tc.open, tc.rule)
			}
			// The week after may hold a DST change: compare instants, not wall times.
			want := time.Date(tc.next.Year(), tc.next.Month(), tc.next.Day(), tc.next.Hour(), tc.next.Minute(), 0, 0, ny)
			if st.NextChange == nil || !st.NextChange.Equal(want) {
				t.Errorf("at %s: next change %v, want %v", tc.at, st.NextChange, want)
			}
			d := callrelay.Decide(rt, "+15557770000", tc.at)
			if (d.Reason == callrelay.DecisionOpen) != tc.open {
				t.Errorf("Decide reason %q, want open %v", d.Reason, tc.open)
			}
		})
	}
}

func TestScheduleAcrossMidnight(t *testing.T) {
	paris := zone(t, "Europe/Paris")
	fri := nextWeekday(paris, time.Friday, 0, 0)
	sat := fri.AddDate(0, 0, 1)
	satDate := sat.Format(time.DateOnly)
	rt := mustRouting(t, `{"owner_email": "a@b.example", "targets": [{"type": "phone", "to": "+15550001111"}],
		"time_zone": "Europe/Paris", "schedule": {"weekly": {"fri": ["22:00-02:00"], "mon": ["13:00-24:00"], "tue": ["00:00-02:00"]},
		"exceptions": [{"date": "`+satDate+`", "name": "fête"}]}}`)

	// Friday night's range runs into Saturday, holiday or not: hours belong to the day they open.
	st := rt.ScheduleState(sat.Add(time.Hour))
	if !st.Open || st.Rule != "weekly.fri 22:00-02:00" || st.NextChange == nil || !st.NextChange.Equal(sat.Add(2*time.Hour)) {
		t.Errorf("saturday 01:00: %+v", st)
	}
	if st := rt.ScheduleState(sat.Add(3 * time.Hour)); st.Open || st.Rule != "closed: exceptions "+satDate+" (fête)" {
		t.Errorf("saturday 03:00: %+v", st)
	}
	// Monday 13:00-24:00 and Tuesday 00:00-02:00 touch: one open stretch until Tuesday 02:00.
	mon := fri.AddDate(0, 0, 3)
	st = rt.ScheduleState(mon.Add(14 * time.Hour))
	tue2 := time.Date(mon.Year(), mon.Month(), mon.Day()+1, 2, 0, 0, 0, paris)
	if !st.Open || st.NextChange == nil || !st.NextChange.Equal(tue2) {
		t.Errorf("monday 14:00: %+v, want open until %v", st, tue2)
	}

	// A holiday on the opening day closes its range, after midnight too.
	frDate := fri.Format(time.DateOnly)
	closed := mustRouting(t, `{"owner_email": "a@b.example", "targets": [{"type": "phone", "to": "+15550001111"}],
		"time_zone": "Europe/Paris", "schedule": {"weekly": {"fri": ["22:00-02:00"]}, "exceptions": [{"date": "`+frDate+`"}]}}`)
	if st := closed.ScheduleState(sat.Add(time.Hour)); st.Open {
		t.Errorf("holiday friday, saturday 01:00: %+v", st)
	}

	always := mustRouting(t, `{"owner_email": "a@b.example", "targets": [{"type": "phone", "to": "+15550001111"}],
		"time_zone": "UTC", "schedule": {"weekly": {"mon": ["00:00-24:00"], "tue": ["00:00-24:00"], "wed": ["00:00-24:00"],
		"thu": ["00:00-24:00"], "fri": ["00:00-24:00"], "sat": ["00:00-24:00"], "sun": ["00:00-24:00"]}}}`)
	if st := always.ScheduleState(clocktest.Now()); !st.Open || st.NextChange != nil {
		t.Errorf("open every hour: %+v, want open with no next change", st)
	}
}

// transition checks that loc really changes its clock as a test expects: the dates below are
// data about the zone rules, and this guards them against a zone database that disagrees.
func transition(t *testing.T, loc *time.Location, at time.Time, wantBefore, wantAfter string) {
	t.Helper()
	before := at.Add(-time.Second).In(loc).Format("15:04:05 MST")
	after := at.In(loc).Format("15:04:05 MST")
	if before != wantBefore || after != wantAfter {
		t.Fatalf("%s at %s: %s then %s, want %s then %s", loc, at.UTC(), before, after, wantBefore, wantAfter)
	}
}

func TestScheduleDST(t *testing.T) {
	ny := zone(t, "America/New_York")
	berlin := zone(t, "Europe/Berlin")
	utc := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	routing := func(tz, weekly string) callrelay.Routing {
		return mustRouting(t, `{"owner_email": "a@b.example", "targets": [{"type": "phone", "to": "+15550001111"}],
			"time_zone": "`+tz+`", "schedule": {"weekly": {`+weekly+`}}}`)
	}

	t.Run("New York spring forward: 02:00-03:00 does not exist", func(t *testing.T) {
		transition(t, ny, utc("2026-03-08T07:00:00Z"), "01:59:59 EST", "03:00:00 EDT")
		rt := routing("America/New_York", `"sun": ["02:30-05:00"]`)
		// A range opening in the gap opens when the clock jumps past its start.
		if st := rt.ScheduleState(utc("2026-03-08T06:59:59Z")); st.Open || st.NextChange == nil || !st.NextChange.Equal(utc("2026-03-08T07:00:00Z")) {
			t.Errorf("01:59:59 EST: %+v, want closed until 03:00 EDT", st)
		}
		if st := rt.ScheduleState(utc("2026-03-08T07:00:00Z")); !st.Open || !st.NextChange.Equal(utc("2026-03-08T09:00:00Z")) {
			t.Errorf("03:00 EDT: %+v, want open until 05:00 EDT", st)
		}
		// A range wholly in the gap never opens that day.
		gap := routing("America/New_York", `"sun": ["02:00-02:30"]`)
		for _, at := range []string{"2026-03-08T06:59:59Z", "2026-03-08T07:00:00Z", "2026-03-08T07:15:00Z"} {
			if st := gap.ScheduleState(utc(at)); st.Open {
				t.Errorf("02:00-02:30 at %s: open", at)
			}
		}
		if st := gap.ScheduleState(utc("2026-03-08T06:00:00Z")); st.NextChange == nil || !st.NextChange.Equal(utc("2026-03-15T06:00:00Z")) {
			t.Errorf("02:00-02:30 next opens %v, want the next Sunday 02:00 EDT", st.NextChange)
		}
		// A range over the gap is an hour shorter: 01:00-04:00 is open 01:00 EST to 04:00 EDT.
		over := routing("America/New_York", `"sun": ["01:00-04:00"]`)
		st := over.ScheduleState(utc("2026-03-08T06:30:00Z"))
		if !st.Open || !st.NextChange.Equal(utc("2026-03-08T08:00:00Z")) {
			t.Errorf("01:00-04:00 at 01:30 EST: %+v", st)
		}
		if got := st.NextChange.Sub(utc("2026-03-08T06:00:00Z")); got != 2*time.Hour {
			t.Errorf("01:00-04:00 lasts %v on the spring-forward night, want 2h", got)
		}
	})

	t.Run("New York fall back: 01:00-02:00 happens twice", func(t *testing.T) {
		transition(t, ny, utc("2026-11-01T06:00:00Z"), "01:59:59 EDT", "01:00:00 EST")
		// A range ending at 01:30 ends the first time the clock reads 01:30.
		rt := routing("America/New_York", `"sun": ["00:00-01:30"]`)
		if st := rt.ScheduleState(utc("2026-11-01T05:15:00Z")); !st.Open || !st.NextChange.Equal(utc("2026-11-01T05:30:00Z")) {
			t.Errorf("01:15 EDT: %+v, want open until 01:30 EDT", st)
		}
		if st := rt.ScheduleState(utc("2026-11-01T06:15:00Z")); st.Open {
			t.Errorf("01:15 EST (the second time): %+v, want closed", st)
		}
		// A range ending at 02:00 is an hour longer: 01:00 EDT to 02:00 EST.
		long := routing("America/New_York", `"sun": ["01:00-02:00"]`)
		st := long.ScheduleState(utc("2026-11-01T06:30:00Z"))
		if !st.Open || !st.NextChange.Equal(utc("2026-11-01T07:00:00Z")) {
			t.Errorf("01:30 EST in 01:00-02:00: %+v, want open until 02:00 EST", st)
		}
		// A range opening at 01:30 opens the first time.
		late := routing("America/New_York", `"sun": ["01:30-03:00"]`)
		if st := late.ScheduleState(utc("2026-11-01T05:00:00Z")); st.Open || !st.NextChange.Equal(utc("2026-11-01T05:30:00Z")) {
			t.Errorf("01:00 EDT: %+v, want closed until 01:30 EDT", st)
		}
	})

	t.Run("Berlin", func(t *testing.T) {
		transition(t, berlin, utc("2026-03-29T01:00:00Z"), "01:59:59 CET", "03:00:00 CEST")
		transition(t, berlin, utc("2026-10-25T01:00:00Z"), "02:59:59 CEST", "02:00:00 CET")
		spring := routing("Europe/Berlin", `"sun": ["02:15-02:45", "03:00-04:00"]`)
		if st := spring.ScheduleState(utc("2026-03-29T01:00:00Z")); !st.Open || st.Rule != "weekly.sun 03:00-04:00" {
			t.Errorf("spring forward 03:00 CEST: %+v", st)
		}
		if st := spring.ScheduleState(utc("2026-03-29T00:30:00Z")); st.Open || !st.NextChange.Equal(utc("2026-03-29T01:00:00Z")) {
			t.Errorf("spring forward 01:30 CET: %+v, want closed until 03:00 CEST", st)
		}
		fall := routing("Europe/Berlin", `"sun": ["02:30-03:00"]`)
		// 02:30 happens at 00:30Z (CEST) and 01:30Z (CET); the range is the first 02:30 to 03:00 CET.
		if st := fall.ScheduleState(utc("2026-10-25T00:45:00Z")); !st.Open || !st.NextChange.Equal(utc("2026-10-25T02:00:00Z")) {
			t.Errorf("fall back 02:45 CEST: %+v, want open until 03:00 CET", st)
		}
		if st := fall.ScheduleState(utc("2026-10-25T00:15:00Z")); st.Open || !st.NextChange.Equal(utc("2026-10-25T00:30:00Z")) {
			t.Errorf("fall back 02:15 CEST: %+v, want closed until 02:30 CEST", st)
		}
	})
}

func TestDecide(t *testing.T) {
	ny := zone(t, "America/New_York")
	mon := nextWeekday(ny, time.Monday, 0, 0)
	open, closed := mon.Add(9*time.Hour), mon.Add(20*time.Hour)
	policy := `, "callers": {"block": ["+1900", "+15550009999"], "withheld": "voicemail"}`
	dental := strings.TrimSuffix(strings.TrimSpace(dentalJSON()), "}") + policy + "}"
	rt := mustRouting(t, dental)

	cases := []struct {
		name, from     string
		at             time.Time
		action         callrelay.Action
		reason, rule   string
		changed        bool
		prompt, status string
	}{
		{"open", "+15557770000", open, callrelay.ActForward, callrelay.DecisionOpen, "weekly.mon 08:00-12:00", false, "", callrelay.StatusRinging},
		{"after hours", "+15557770000", closed, callrelay.ActVoicemail, callrelay.DecisionAfterHours, "closed: weekly.mon", true,
			"The office is closed. Leave a message and we will call you back.", callrelay.StatusVoicemail},
		{"blocked prefix", "+19005551", open, callrelay.ActReject, callrelay.DecisionBlocked, "callers.block +1900 reject", true, "", callrelay.StatusCompleted},
		{"blocked number", "+15550009999", closed, callrelay.ActReject, callrelay.DecisionBlocked, "callers.block +15550009999 reject", true, "", callrelay.StatusCompleted},
		{"withheld keypad", "+266696687", open, callrelay.ActVoicemail, callrelay.DecisionWithheld, "callers.withheld voicemail", true, "", callrelay.StatusVoicemail},
		{"withheld word", "Anonymous", open, callrelay.ActVoicemail, callrelay.DecisionWithheld, "callers.withheld voicemail", true, "", callrelay.StatusVoicemail},
		{"withheld empty", "", open, callrelay.ActVoicemail, callrelay.DecisionWithheld, "callers.withheld voicemail", true, "", callrelay.StatusVoicemail},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := callrelay.Decide(rt, tc.from, tc.at)
			p := callrelay.PlanInbound(d.Routing)
			if p.Action != tc.action || d.Reason != tc.reason || d.Rule != tc.rule || d.Changed() != tc.changed || p.Status() != tc.status {
				t.Errorf("got %s %q %q changed=%v status %s, want %s %q %q changed=%v status %s",
					p.Action, d.Reason, d.Rule, d.Changed(), p.Status(), tc.action, tc.reason, tc.rule, tc.changed, tc.status)
			}
			if d.Routing.Schedule != nil || d.Routing.Callers != nil || d.Routing.AfterHours != nil {
				t.Errorf("effective routing keeps its schedule or policies: %+v", d.Routing)
			}
			if tc.prompt != "" && d.Routing.VoicemailPrompt() != tc.prompt {
				t.Errorf("prompt %q, want %q", d.Routing.VoicemailPrompt(), tc.prompt)
			}
		})
	}

	t.Run("after hours to the on-call phone", func(t *testing.T) {
		oncall := mustRouting(t, strings.Replace(dentalJSON(), `"after_hours": {`, `"after_hours": {"targets": [{"type": "phone", "to": "+15550002222"}], `, 1))
		d := callrelay.Decide(oncall, "+15557770000", closed)
		p := callrelay.PlanInbound(d.Routing)
		if p.Action != callrelay.ActForward || len(d.Routing.Targets) != 1 || d.Routing.Targets[0].To != "+15550002222" ||
			d.Routing.Greeting != "The office is closed." || d.Routing.VoicemailPrompt() != "Leave a message and we will call you back." {
			t.Errorf("after hours on call: %s %+v", p.Action, d.Routing)
		}
	})

	t.Run("not on the allow list", func(t *testing.T) {
		only := mustRouting(t, `{"owner_email": "a@b.example", "targets": [{"type": "phone", "to": "+15550001111"}],
			"callers": {"allow": ["+44"], "blocked": "voicemail"}}`)
		d := callrelay.Decide(only, "+15557770000", open)
		if p := callrelay.PlanInbound(d.Routing); p.Action != callrelay.ActVoicemail || d.Reason != callrelay.DecisionNotAllowed {
			t.Errorf("not allowed: %s %q %q", p.Action, d.Reason, d.Rule)
		}
		if d := callrelay.Decide(only, "+447700900000", open); callrelay.PlanInbound(d.Routing).Action != callrelay.ActForward || d.Reason != callrelay.DecisionAllowed {
			t.Errorf("allowed: %+v", d)
		}
		// The longest entry decides: a block inside an allowed prefix, an allow inside that.
		both := mustRouting(t, `{"owner_email": "a@b.example", "targets": [{"type": "phone", "to": "+15550001111"}],
			"callers": {"allow": ["+1", "+1900555"], "block": ["+1900"]}}`)
		for from, want := range map[string]string{"+19005551234": "callers.allow +1900555", "+19001234567": "callers.block +1900 reject", "+15557770000": "callers.allow +1"} {
			if d := callrelay.Decide(both, from, open); d.Rule != want {
				t.Errorf("from %s: rule %q, want %q", from, d.Rule, want)
			}
		}
	})

	t.Run("no schedule nor policy", func(t *testing.T) {
		plain := mustRouting(t, `{"owner_email": "a@b.example", "targets": [{"type": "phone", "to": "+15550001111"}]}`)
		if d := callrelay.Decide(plain, "", open); d.Reason != "" || d.Changed() || callrelay.PlanInbound(d.Routing).Action != callrelay.ActForward {
			t.Errorf("plain: %+v", d)
		}
	})
}

func TestRedactedAfterHours(t *testing.T) {
	rt := mustRouting(t, `{"owner_email": "a@b.example", "targets": [{"type": "phone", "to": "+15550001111"}],
		"time_zone": "UTC", "schedule": {"weekly": {}},
		"after_hours": {"targets": [{"type": "sip", "uri": "sip:oncall@pbx.example.com", "username": "u", "password": "secret"}]}}`)
	if p := rt.Redacted().AfterHours.Targets[0].Password; p != "" {
		t.Errorf("after_hours SIP password shown: %q", p)
	}
	if rt.AfterHours.Targets[0].Password != "secret" {
		t.Errorf("Redacted changed the routing it copied")
	}
}

// BenchmarkDecide is the voice webhook's added work for a scheduled number with a caller policy.
func BenchmarkDecide(b *testing.B) {
	var holidays []string
	start := clocktest.Now()
	for i := range 20 {
		holidays = append(holidays, start.AddDate(0, 0, 3*i+1).Format(time.DateOnly))
	}
	dental := strings.TrimSuffix(strings.TrimSpace(dentalJSON(holidays...)), "}") +
		`, "callers": {"block": ["+1900", "+1976", "+15550009999"], "withheld": "voicemail"}}`
	rt := mustRouting(b, dental)
	now := start
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(7 * time.Minute) // every hour of the week, open and closed
		if d := callrelay.Decide(rt, "+15557770000", now); d.Reason == "" {
			b.Fatal("no decision")
		}
	}
}

func BenchmarkScheduleState(b *testing.B) {
	rt := mustRouting(b, dentalJSON(clocktest.Now().AddDate(0, 0, 2).Format(time.DateOnly)))
	now := clocktest.Now()
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(7 * time.Minute)
		if rt.ScheduleState(now) == nil {
			b.Fatal("no state")
		}
	}
}

func TestAudioURLs(t *testing.T) {
	base := func(extra string) string {
		return `{"owner_email": "a@b.example", "targets": [{"type": "phone", "to": "+15550001111"}]` + extra + `}`
	}
	long := "https://media.example.com/" + strings.Repeat("a", 1024) + ".mp3"
	for _, tc := range []struct{ body, field string }{
		{base(`, "greeting_url": "http://media.example.com/a.mp3"`), "greeting_url"},
		{base(`, "greeting_url": "https://user:pw@media.example.com/a.mp3"`), "greeting_url"},
		{base(`, "greeting_url": "https:///a.mp3"`), "greeting_url"},
		{base(`, "greeting_url": "media.example.com/a.mp3"`), "greeting_url"},
		{base(`, "greeting_url": "https://media.example.com/a.mp3#t=1"`), "greeting_url"},
		{base(`, "greeting_url": "https://media.example.com/a b.mp3"`), "greeting_url"},
		{base(`, "greeting_url": "` + long + `"`), "greeting_url"},
		{base(`, "voicemail": {"prompt_url": "ftp://media.example.com/a.mp3"}`), "voicemail.prompt_url"},
		{base(`, "time_zone": "UTC", "schedule": {"weekly": {}}, "after_hours": {"greeting_url": "https://m.example.com/closed.mp3"}`), "after_hours.greeting_url"},
		{base(`, "time_zone": "UTC", "schedule": {"weekly": {}}, "after_hours": {"voicemail_prompt_url": "http://m.example.com/a.mp3"}`), "after_hours.voicemail_prompt_url"},
	} {
		_, err := callrelay.DecodeRouting(strings.NewReader(tc.body))
		if f := errorField(err); f != tc.field {
			t.Errorf("%s: field %q (%v), want %q", tc.body, f, err, tc.field)
		}
	}
	rt := mustRouting(t, base(`, "greeting_url": "https://media.example.com/a.mp3?v=1", "voicemail": {"prompt_url": "https://media.example.com/b.wav"},
		"time_zone": "UTC", "schedule": {"weekly": {}},
		"after_hours": {"voicemail_prompt_url": "https://media.example.com/closed.mp3"}`))
	d := callrelay.Decide(rt, "+15557770000", clocktest.Now())
	if d.Reason != callrelay.DecisionAfterHours || d.Routing.Voicemail.PromptURL != "https://media.example.com/closed.mp3" || d.Routing.GreetingURL != "" {
		t.Errorf("after hours with a recorded prompt: %+v", d)
	}
	// An after-hours text prompt replaces the number's recorded one.
	rt = mustRouting(t, base(`, "voicemail": {"prompt_url": "https://media.example.com/b.wav"},
		"time_zone": "UTC", "schedule": {"weekly": {}}, "after_hours": {"voicemail_prompt": "We are closed."}`))
	if d := callrelay.Decide(rt, "+15557770000", clocktest.Now()); d.Routing.Voicemail.PromptURL != "" || d.Routing.VoicemailPrompt() != "We are closed." {
		t.Errorf("after hours with a text prompt: %+v", d.Routing.Voicemail)
	}
}

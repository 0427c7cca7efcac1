package callrelay

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Business hours and caller policies (docs/design.md, "Schedules and caller policies"). A
// number's routing may carry a schedule in its time_zone, an after_hours routing for when it is
// closed, and caller policies. Decide turns all of them, the caller and the time into the
// routing a call keeps: the "effective" routing, with the schedule and policies applied and
// removed, so that every later webhook of the call reads it as it reads any routing.

// Limits of a schedule and of the caller lists: each bounds work done per call.
const (
	MaxRangesPerDay   = 8
	MaxExceptions     = 400
	MaxCallerPrefixes = 1000
	maxExceptionName  = 64
	maxTimeZoneLen    = 64 // the longest IANA name is 32 characters
	minutesPerDay     = 24 * 60
)

// Caller policy actions.
const (
	PolicyRing      = "ring"
	PolicyVoicemail = "voicemail"
	PolicyReject    = "reject"
)

// Decision reasons, as written on the inbound timeline entry ("decision").
const (
	DecisionOpen       = "open"
	DecisionAfterHours = "after_hours"
	DecisionBlocked    = "blocked"
	DecisionNotAllowed = "not_allowed"
	DecisionWithheld   = "withheld"
	DecisionAllowed    = "allowed"
	DecisionDisabled   = "disabled"
)

// Schedule is a number's open hours, read in the number's time_zone. Hours belong to the day
// they open on: "22:00-02:00" on fri is open from Friday 22:00 to Saturday 02:00, and a
// holiday on Saturday does not shorten it.
type Schedule struct {
	Weekly     WeeklyHours         `json:"weekly"`
	Exceptions []ScheduleException `json:"exceptions,omitempty"`
}

// WeeklyHours are the open ranges of each weekday, "HH:MM-HH:MM"; a range whose end is before
// its start crosses midnight; "24:00" ends a range at midnight. A day left out is closed.
type WeeklyHours struct {
	Mon []string `json:"mon,omitempty"`
	Tue []string `json:"tue,omitempty"`
	Wed []string `json:"wed,omitempty"`
	Thu []string `json:"thu,omitempty"`
	Fri []string `json:"fri,omitempty"`
	Sat []string `json:"sat,omitempty"`
	Sun []string `json:"sun,omitempty"`
}

// ScheduleException replaces the weekly hours of one date: no hours is closed all day (a
// holiday), hours are that day's special hours.
type ScheduleException struct {
	Date  string   `json:"date"` // YYYY-MM-DD, in the number's time_zone
	Name  string   `json:"name,omitempty"`
	Hours []string `json:"hours,omitempty"`
}

// AfterHours is how a call is routed while the schedule says closed. Without targets the caller
// goes straight to voicemail (after the greeting, with voicemail_prompt when given), or is
// rejected when the number's voicemail is off; with targets those ring instead (an on-call
// phone), as the number's targets would, then voicemail as usual.
type AfterHours struct {
	Greeting           string   `json:"greeting,omitempty"`
	GreetingURL        string   `json:"greeting_url,omitempty"`
	Targets            []Target `json:"targets,omitempty"`
	VoicemailPrompt    string   `json:"voicemail_prompt,omitempty"`
	VoicemailPromptURL string   `json:"voicemail_prompt_url,omitempty"`
}

// CallerPolicy keeps unwanted callers out. Block and Allow hold E.164 numbers or prefixes
// ("+1900"); the longest entry that starts the caller's number decides, a block winning a tie.
// With an allow list, a caller no allow entry matches is treated as blocked.
type CallerPolicy struct {
	Block []string `json:"block,omitempty"`
	Allow []string `json:"allow,omitempty"`
	// Blocked: "reject" (<Reject/>, not billed) or "voicemail" (no one rings).
	Blocked string `json:"blocked"`
	// Withheld, for a caller whose number is withheld: "ring", "voicemail" or "reject".
	Withheld string `json:"withheld"`
}

// weekdays in time.Weekday order, as written in WeeklyHours.
var weekdays = [7]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

func (w *WeeklyHours) day(d time.Weekday) []string {
	switch d {
	case time.Sunday:
		return w.Sun
	case time.Monday:
		return w.Mon
	case time.Tuesday:
		return w.Tue
	case time.Wednesday:
		return w.Wed
	case time.Thursday:
		return w.Thu
	case time.Friday:
		return w.Fri
	}
	return w.Sat
}

// span is a parsed range in minutes from the day's midnight; end > 1440 crosses midnight.
type span struct{ start, end int }

// parseSpan reads "HH:MM-HH:MM". ok is false for anything else, or an empty range.
func parseSpan(s string) (span, bool) {
	if len(s) != 11 || s[5] != '-' {
		return span{}, false
	}
	a, ok1 := parseClock(s[:5], false)
	b, ok2 := parseClock(s[6:], true)
	if !ok1 || !ok2 || a == b {
		return span{}, false
	}
	if b < a {
		b += minutesPerDay
	}
	return span{a, b}, true
}

// parseClock reads "HH:MM"; "24:00" only as an end.
func parseClock(s string, end bool) (int, bool) {
	if len(s) != 5 || s[2] != ':' {
		return 0, false
	}
	for _, i := range []int{0, 1, 3, 4} {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	h := int(s[0]-'0')*10 + int(s[1]-'0')
	m := int(s[3]-'0')*10 + int(s[4]-'0')
	if m > 59 || h > 24 || (h == 24 && (m != 0 || !end)) {
		return 0, false
	}
	return h*60 + m, true
}

// locations caches loaded zones: LoadLocation reads the zone database each time, and the
// voice webhook evaluates schedules per call. There are a few hundred zone names at most.
var locations sync.Map // name → *time.Location

var timeZoneNameRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$`)

// LoadZone returns the IANA zone name, or an EINVALID error naming field.
func LoadZone(field, name string) (*time.Location, error) {
	if l, ok := locations.Load(name); ok {
		return l.(*time.Location), nil
	}
	// LoadLocation takes "" (UTC), "Local" (the server's zone) and reads the name as a path:
	// a bounded, plain IANA name only.
	bad := Invalidf(field, "%s %s is not an IANA time zone name like Europe/Paris.", field, quoteShort(name))
	if name == "" || len(name) > maxTimeZoneLen || name == "Local" || !timeZoneNameRe.MatchString(name) {
		return nil, bad
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, bad
	}
	locations.Store(name, loc)
	return loc, nil
}

// validateSchedulePolicies checks the schedule, after_hours and callers of r.
func (r Routing) validateSchedulePolicies() error {
	if r.Schedule == nil && r.AfterHours != nil {
		return Invalidf("after_hours", "after_hours needs a schedule: without one the number is always open.")
	}
	if s := r.Schedule; s != nil {
		if r.TimeZone == "" {
			return Invalidf("time_zone", "time_zone is required with a schedule, e.g. America/New_York.")
		}
		if _, err := LoadZone("time_zone", r.TimeZone); err != nil {
			return err
		}
		if err := s.validate(); err != nil {
			return err
		}
	}
	if a := r.AfterHours; a != nil {
		if err := validSay("after_hours.greeting", a.Greeting); err != nil {
			return err
		}
		if err := validSay("after_hours.voicemail_prompt", a.VoicemailPrompt); err != nil {
			return err
		}
		if len(a.Targets) > MaxTargets {
			return Invalidf("after_hours.targets", "after_hours.targets must hold at most %d targets.", MaxTargets)
		}
		for i, t := range a.Targets {
			if err := t.validate(fmt.Sprintf("after_hours.targets[%d]", i)); err != nil {
				return err
			}
		}
		if len(a.Targets) == 0 && len([]rune(a.Greeting))+1+len([]rune(r.afterHoursPrompt())) > maxSayLen {
			// Straight to voicemail, the greeting and the prompt are one <Say>.
			return Invalidf("after_hours.greeting", "after_hours.greeting and the voicemail prompt together must be at most %d characters.", maxSayLen)
		}
	}
	if c := r.Callers; c != nil {
		if err := validPrefixes("callers.block", c.Block); err != nil {
			return err
		}
		if err := validPrefixes("callers.allow", c.Allow); err != nil {
			return err
		}
		switch c.Blocked {
		case PolicyReject:
		case PolicyVoicemail:
			if !r.Voicemail.Enabled {
				return Invalidf("callers.blocked", "callers.blocked is voicemail but voicemail is off.")
			}
		default:
			return Invalidf("callers.blocked", "callers.blocked must be %q or %q.", PolicyReject, PolicyVoicemail)
		}
		switch c.Withheld {
		case PolicyRing, PolicyReject:
		case PolicyVoicemail:
			if !r.Voicemail.Enabled {
				return Invalidf("callers.withheld", "callers.withheld is voicemail but voicemail is off.")
			}
		default:
			return Invalidf("callers.withheld", "callers.withheld must be %q, %q or %q.", PolicyRing, PolicyVoicemail, PolicyReject)
		}
	}
	return nil
}

var prefixRe = regexp.MustCompile(`^\+[1-9][0-9]{0,14}$`)

func validPrefixes(field string, list []string) error {
	if len(list) > MaxCallerPrefixes {
		return Invalidf(field, "%s must hold at most %d entries.", field, MaxCallerPrefixes)
	}
	seen := make(map[string]bool, len(list))
	for i, p := range list {
		f := fmt.Sprintf("%s[%d]", field, i)
		if !prefixRe.MatchString(p) {
			return Invalidf(f, "%s %s is not an E.164 number or prefix like +1900 or +15550001111.", f, quoteShort(p))
		}
		if seen[p] {
			return Invalidf(f, "%s %s is listed twice.", f, p)
		}
		seen[p] = true
	}
	return nil
}

// applyPolicyDefaults fills what a caller policy leaves out.
func (r *Routing) applyPolicyDefaults() {
	if c := r.Callers; c != nil {
		if c.Blocked == "" {
			c.Blocked = PolicyReject
		}
		if c.Withheld == "" {
			c.Withheld = PolicyRing
		}
		if len(c.Block) == 0 {
			c.Block = nil
		}
		if len(c.Allow) == 0 {
			c.Allow = nil
		}
	}
	if a := r.AfterHours; a != nil {
		for i := range a.Targets {
			if len(a.Targets[i].Headers) == 0 {
				a.Targets[i].Headers = nil
			}
		}
	}
}

func (s *Schedule) validate() error {
	var week []span // minutes from Sunday 00:00
	for d := time.Sunday; d <= time.Saturday; d++ {
		field := "schedule.weekly." + weekdays[d]
		spans, err := parseDay(field, s.Weekly.day(d))
		if err != nil {
			return err
		}
		for _, sp := range spans {
			week = append(week, span{int(d)*minutesPerDay + sp.start, int(d)*minutesPerDay + sp.end})
		}
		// Overlaps across days: compare with every range so far, and with Sunday's wrapped
		// around the week (Saturday night into Sunday).
		for i, a := range week {
			for _, b := range week[i+1:] {
				if overlapsOnWeek(a, b) {
					return Invalidf(field, "%s: ranges overlap (%s and %s).", field, weekSpanString(a), weekSpanString(b))
				}
			}
		}
	}
	if len(s.Exceptions) > MaxExceptions {
		return Invalidf("schedule.exceptions", "schedule.exceptions must hold at most %d dates.", MaxExceptions)
	}
	dates := make(map[string]bool, len(s.Exceptions))
	for i, e := range s.Exceptions {
		field := fmt.Sprintf("schedule.exceptions[%d]", i)
		if _, err := time.Parse(time.DateOnly, e.Date); err != nil || len(e.Date) != len(time.DateOnly) {
			return Invalidf(field+".date", "%s.date %s is not a date like 2026-12-25.", field, quoteShort(e.Date))
		}
		if dates[e.Date] {
			return Invalidf(field+".date", "%s.date %s is listed twice.", field, e.Date)
		}
		dates[e.Date] = true
		if !isText(e.Name) || len(e.Name) > maxExceptionName || strings.ContainsAny(e.Name, "\r\n") {
			return Invalidf(field+".name", "%s.name must be one line of at most %d characters.", field, maxExceptionName)
		}
		spans, err := parseDay(field+".hours", e.Hours)
		if err != nil {
			return err
		}
		for j, a := range spans {
			for _, b := range spans[j+1:] {
				if a.start < b.end && b.start < a.end {
					return Invalidf(field+".hours", "%s.hours: ranges overlap.", field)
				}
			}
		}
	}
	return nil
}

// parseDay parses one day's ranges and checks them against each other.
func parseDay(field string, list []string) ([]span, error) {
	if len(list) > MaxRangesPerDay {
		return nil, Invalidf(field, "%s must hold at most %d ranges.", field, MaxRangesPerDay)
	}
	spans := make([]span, 0, len(list))
	for i, s := range list {
		sp, ok := parseSpan(s)
		if !ok {
			f := fmt.Sprintf("%s[%d]", field, i)
			return nil, Invalidf(f, "%s %s is not a range like 08:00-12:00 (24-hour times, end after start or past midnight, 24:00 for midnight).", f, quoteShort(s))
		}
		spans = append(spans, sp)
	}
	return spans, nil
}

const minutesPerWeek = 7 * minutesPerDay

// overlapsOnWeek reports whether two ranges overlap on the week seen as a circle.
func overlapsOnWeek(a, b span) bool {
	for _, shift := range []int{-minutesPerWeek, 0, minutesPerWeek} {
		if a.start < b.end+shift && b.start+shift < a.end {
			return true
		}
	}
	return false
}

func weekSpanString(s span) string {
	d, m := s.start/minutesPerDay, s.start%minutesPerDay
	e := s.end - d*minutesPerDay
	if e > minutesPerDay {
		e -= minutesPerDay
	}
	return fmt.Sprintf("%s %02d:%02d-%02d:%02d", weekdays[d%7], m/60, m%60, e/60, e%60)
}

// ScheduleState is whether a number is open at an instant, why, and until when.
type ScheduleState struct {
	Open bool `json:"open"`
	// Rule is what decided: "weekly.mon 08:00-12:00", "closed: weekly.sat",
	// "exceptions 2026-12-25 (Christmas)"...
	Rule string `json:"rule"`
	// NextChange is when Open next flips; nil when it does not within a year and a week.
	NextChange *time.Time `json:"next_change"`
}

// interval is an open range placed in time.
type interval struct {
	from, to time.Time
	rule     string
}

// dayIntervals places the ranges opening on the local date (y, m, d) in time. Each end is the
// first instant the wall clock reaches that time: a time skipped by a DST change (02:30 on a
// spring-forward night) is reached when the clock jumps past it, and a time that happens twice
// (01:30 on a fall-back night) is reached the first time.
func (s *Schedule) dayIntervals(loc *time.Location, y int, m time.Month, d int, out []interval) []interval {
	date := time.Date(y, m, d, 12, 0, 0, 0, time.UTC)
	key := date.Format(time.DateOnly)
	var list []string
	rule := "weekly." + weekdays[date.Weekday()]
	found := false
	for i := range s.Exceptions {
		if s.Exceptions[i].Date == key {
			list, found = s.Exceptions[i].Hours, true
			rule = "exceptions " + key
			if n := s.Exceptions[i].Name; n != "" {
				rule += " (" + n + ")"
			}
			break
		}
	}
	if !found {
		list = s.Weekly.day(date.Weekday())
	}
	for _, r := range list {
		sp, ok := parseSpan(r)
		if !ok {
			continue // validated on PUT; a stored routing is trusted but not followed off a cliff
		}
		from := wallReached(loc, y, m, d, sp.start)
		to := wallReached(loc, y, m, d, sp.end)
		if from.Before(to) {
			out = append(out, interval{from, to, rule + " " + r})
		}
	}
	return out
}

// wallReached is the first instant at which loc's wall clock reads at least (y, m, d) plus
// minutes (which may pass 24:00 into the next day).
func wallReached(loc *time.Location, y int, m time.Month, d, minutes int) time.Time {
	wall := time.Date(y, m, d, 0, minutes, 0, 0, time.UTC).Unix() // the wall time as if it were UTC
	// Around one instant a zone has at most two offsets: the one a day before and a day after.
	_, before := time.Unix(wall-86400, 0).In(loc).Zone()
	_, after := time.Unix(wall+86400, 0).In(loc).Zone()
	best := int64(0)
	found := false
	for _, off := range []int{before, after} {
		c := wall - int64(off)
		if _, o := time.Unix(c, 0).In(loc).Zone(); c+int64(o) == wall && (!found || c < best) {
			best, found = c, true
		}
	}
	if found {
		return time.Unix(best, 0).In(loc)
	}
	// A gap: the clock jumps over the wall time at the transition, which is where the zone
	// in effect at wall-before (already past the transition) starts.
	c := time.Unix(wall-int64(before), 0).In(loc)
	if start, _ := c.ZoneBounds(); !start.IsZero() && !start.After(c) {
		return start.In(loc)
	}
	return c
}

// State evaluates the schedule at now in loc.
func (s *Schedule) State(loc *time.Location, now time.Time) ScheduleState {
	st, _ := s.state(loc, now, false)
	return st
}

// open reports whether the schedule is open at now, and the rule that says so: the cheap
// form for the voice webhook, which needs no next change.
func (s *Schedule) open(loc *time.Location, now time.Time) (bool, string) {
	st, _ := s.state(loc, now, true)
	return st.Open, st.Rule
}

// horizon is how far ahead the next change is looked for: exceptions may be a year away.
const horizon = 366 + 7

func (s *Schedule) state(loc *time.Location, now time.Time, quick bool) (ScheduleState, bool) {
	local := now.In(loc)
	y, m, d := local.Date()
	var buf [2 * MaxRangesPerDay]interval
	// Ranges of yesterday that cross midnight, and today's.
	cur := s.dayIntervals(loc, y, m, d-1, buf[:0])
	cur = s.dayIntervals(loc, y, m, d, cur)
	st := ScheduleState{Rule: "closed: " + s.closedRule(y, m, d)}
	var in *interval
	for i := range cur {
		if !now.Before(cur[i].from) && now.Before(cur[i].to) {
			in = &cur[i]
			st.Open, st.Rule = true, cur[i].rule
			break
		}
	}
	if quick {
		return st, true
	}
	// The next change: walk the days ahead, merging ranges that touch.
	edge := now
	if in != nil {
		edge = in.to
	}
	all := append([]interval(nil), cur...)
	for k := 1; k <= horizon; k++ {
		all = s.dayIntervals(loc, y, m, d+k, all)
		if in != nil {
			// Open: extend edge while some range starts at or before it and ends after it.
			for grew := true; grew; {
				grew = false
				for _, iv := range all {
					if !iv.from.After(edge) && iv.to.After(edge) {
						edge, grew = iv.to, true
					}
				}
			}
			// Once the day after the edge is being read, nothing further can extend it.
			if wallReached(loc, y, m, d+k, 0).After(edge) {
				t := edge
				st.NextChange = &t
				return st, true
			}
		} else {
			var next *time.Time
			for _, iv := range all {
				if iv.from.After(now) && (next == nil || iv.from.Before(*next)) {
					t := iv.from
					next = &t
				}
			}
			if next != nil {
				st.NextChange = next
				return st, true
			}
		}
		all = slices.DeleteFunc(all, func(iv interval) bool { return !iv.to.After(edge) && !iv.to.After(now) })
	}
	return st, true
}

// closedRule names what keeps a date closed: its exception, or its weekday.
func (s *Schedule) closedRule(y int, m time.Month, d int) string {
	date := time.Date(y, m, d, 12, 0, 0, 0, time.UTC)
	key := date.Format(time.DateOnly)
	for _, e := range s.Exceptions {
		if e.Date == key {
			if e.Name != "" {
				return "exceptions " + key + " (" + e.Name + ")"
			}
			return "exceptions " + key
		}
	}
	return "weekly." + weekdays[date.Weekday()]
}

// ScheduleState returns the number's schedule state at now; nil without a schedule.
func (r Routing) ScheduleState(now time.Time) *ScheduleState {
	if r.Schedule == nil {
		return nil
	}
	loc, err := LoadZone("time_zone", r.TimeZone)
	if err != nil {
		return nil
	}
	st := r.Schedule.State(loc, now)
	return &st
}

// withheldFrom are the From values Twilio sends for a caller whose number is withheld: the
// words ANONYMOUS, RESTRICTED, BLOCKED, UNKNOWN and UNAVAILABLE spelled on a keypad, or the
// word itself.
var withheldFrom = map[string]bool{
	"+266696687": true, "+7378742833": true, "+2562533": true, "+8656696": true, "+86282452253": true,
	"266696687": true, "7378742833": true,
	"anonymous": true, "restricted": true, "blocked": true, "unknown": true, "unavailable": true, "private": true,
}

// Withheld reports whether a caller's From says the number is withheld.
func Withheld(from string) bool {
	return from == "" || withheldFrom[strings.ToLower(from)]
}

// match finds the longest block or allow entry starting from. blocked is true when a block
// entry wins, or when there is an allow list and no entry matched.
func (c *CallerPolicy) match(from string) (rule string, blocked bool) {
	best, bestLen := "", 0
	for _, p := range c.Block {
		if len(p) > bestLen && strings.HasPrefix(from, p) {
			best, bestLen, blocked = "callers.block "+p, len(p), true
		}
	}
	for _, p := range c.Allow {
		if len(p) > bestLen && strings.HasPrefix(from, p) {
			best, bestLen, blocked = "callers.allow "+p, len(p), false
		}
	}
	if bestLen == 0 && len(c.Allow) > 0 {
		return "callers.allow (no entry)", true
	}
	return best, blocked
}

// Decision is how a new call is routed, and why.
type Decision struct {
	// Routing is the call's effective routing: without schedule, after_hours and callers, with
	// after-hours or policy outcomes applied. PlanInbound(Routing) is the call's plan, now and
	// on a repeated webhook.
	Routing Routing
	// Reason is one of the Decision* constants; "" when the number has no schedule or policy.
	Reason string
	// Rule is the rule that matched, e.g. "callers.block +1900" or "weekly.mon 08:00-12:00".
	Rule string
}

// Changed reports whether the decision routes the call otherwise than the number's routing
// with its schedule and policies removed.
func (d Decision) Changed() bool {
	switch d.Reason {
	case DecisionAfterHours, DecisionBlocked, DecisionNotAllowed:
		return true
	case DecisionWithheld:
		return !d.Routing.Enabled
	}
	return false
}

// Decide applies r's caller policies and schedule to a call from from arriving at now.
func Decide(r Routing, from string, now time.Time) Decision {
	if r.Schedule == nil && r.Callers == nil && r.AfterHours == nil {
		return Decision{Routing: r}
	}
	eff := r
	eff.Schedule, eff.AfterHours, eff.Callers = nil, nil, nil
	if !r.Enabled {
		return Decision{Routing: eff, Reason: DecisionDisabled, Rule: "enabled false"}
	}
	reason, rule := "", ""
	if c := r.Callers; c != nil {
		if Withheld(from) {
			switch c.Withheld {
			case PolicyReject:
				eff.Enabled, eff.Voicemail.Enabled = false, false
				return Decision{Routing: eff, Reason: DecisionWithheld, Rule: "callers.withheld reject"}
			case PolicyVoicemail:
				eff.Enabled = false
				return Decision{Routing: eff, Reason: DecisionWithheld, Rule: "callers.withheld voicemail"}
			}
			reason, rule = DecisionWithheld, "callers.withheld ring"
		} else if m, blocked := c.match(from); blocked {
			eff.Enabled = false
			if c.Blocked == PolicyReject {
				eff.Voicemail.Enabled = false
			}
			why := DecisionBlocked
			if strings.HasPrefix(m, "callers.allow") {
				why = DecisionNotAllowed
			}
			return Decision{Routing: eff, Reason: why, Rule: m + " " + c.Blocked}
		} else if m != "" {
			reason, rule = DecisionAllowed, m
		}
	}
	if s := r.Schedule; s != nil {
		loc, err := LoadZone("time_zone", r.TimeZone)
		if err != nil {
			// Validated on PUT: a zone that vanished from the system's database keeps the
			// number ringing rather than closed for ever.
			return Decision{Routing: eff, Reason: DecisionOpen, Rule: "time_zone unknown: open"}
		}
		open, srule := s.open(loc, now)
		if rule != "" {
			srule = rule + "; " + srule
		}
		if open {
			return Decision{Routing: eff, Reason: DecisionOpen, Rule: srule}
		}
		return Decision{Routing: r.afterHoursRouting(eff), Reason: DecisionAfterHours, Rule: srule}
	}
	return Decision{Routing: eff, Reason: reason, Rule: rule}
}

func (r Routing) afterHoursPrompt() string {
	if r.AfterHours != nil && r.AfterHours.VoicemailPrompt != "" {
		return r.AfterHours.VoicemailPrompt
	}
	return r.VoicemailPrompt()
}

// afterHoursRouting is eff routed by after_hours.
func (r Routing) afterHoursRouting(eff Routing) Routing {
	a := r.AfterHours
	if a == nil {
		a = &AfterHours{}
	}
	eff.Greeting, eff.GreetingURL = a.Greeting, a.GreetingURL
	if len(a.Targets) > 0 {
		eff.Targets = a.Targets
		if a.VoicemailPrompt != "" || a.VoicemailPromptURL != "" {
			eff.Voicemail.Prompt, eff.Voicemail.PromptURL = a.VoicemailPrompt, a.VoicemailPromptURL
		}
		return eff
	}
	// Straight to voicemail: the greeting is said as part of the prompt (a voicemail is not
	// preceded by the greeting otherwise), or the call is rejected without voicemail.
	eff.Enabled = false
	eff.Greeting, eff.GreetingURL = "", ""
	prompt := r.afterHoursPrompt()
	if a.Greeting != "" {
		prompt = a.Greeting + " " + prompt
	}
	eff.Voicemail.Prompt = prompt
	switch {
	case a.VoicemailPromptURL != "":
		eff.Voicemail.PromptURL = a.VoicemailPromptURL
	case a.VoicemailPrompt != "" || a.Greeting != "":
		eff.Voicemail.PromptURL = "" // the after-hours words, not the number's usual recording
	}
	return eff
}

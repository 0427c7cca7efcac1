package twiliosim

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/callrelay/callrelay/internal/twiliofake"
)

// Twilio error codes the simulation answers besides twiliofake's.
const (
	codeTooManyRequests = 20429 // "Too Many Requests"
	codeFromNotVerified = 21210 // "'From' phone number not verified"
)

// participantInterval is how often Twilio lets an account create a participant (about one
// per second by default); faster requests are refused with 429, in simulated time, with a
// little tolerance for jitter.
const participantInterval = 800 * time.Millisecond

// handleREST answers a request twiliofake has authenticated and validated against the spec.
func (s *Sim) handleREST(req twiliofake.Request) (int, any) {
	switch req.Operation {
	case "CreateParticipant":
		return s.createParticipant(req)
	case "UpdateParticipant":
		return s.updateParticipant(req)
	case "FetchParticipant":
		s.mu.Lock()
		defer s.mu.Unlock()
		p := s.participantLocked(req)
		if p == nil {
			return notFound(req)
		}
		return http.StatusOK, s.participantJSON(p)
	case "UpdateCall":
		return s.updateCall(req)
	case "CreateCall":
		return s.createCall(req)
	case "FetchCall":
		s.mu.Lock()
		defer s.mu.Unlock()
		c := s.calls[req.PathParams["Sid"]]
		if c == nil {
			return notFound(req)
		}
		return http.StatusOK, s.callJSON(c)
	case "DeleteQueue":
		return s.deleteQueue(req)
	case "DeleteRecording":
		return s.deleteRecording(req)
	}
	return http.StatusNotImplemented, twiliofake.ErrorBody(http.StatusNotImplemented, twiliofake.CodeNotImplemented,
		"callsim does not simulate "+req.Operation)
}

func notFound(req twiliofake.Request) (int, any) {
	return http.StatusNotFound, twiliofake.ErrorBody(http.StatusNotFound, twiliofake.CodeNotFound, twiliofake.NotFoundMessage(req.Path))
}

func badRequest(code int, msg string) (int, any) {
	return http.StatusBadRequest, twiliofake.ErrorBody(http.StatusBadRequest, code, msg)
}

func (s *Sim) restLog(req twiliofake.Request, status int, what string) {
	s.logLocked("twilio", "← %s %s → %d %s", req.Operation, req.Path, status, what)
}

// createParticipant dials a new participant into an active conference. From must be a number
// of the account (the masked number) or, with the inbound call's CallToken, that call's caller.
func (s *Sim) createParticipant(req twiliofake.Request) (int, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := req.Form
	conf := s.conferences[req.PathParams["ConferenceSid"]]
	if conf == nil {
		conf = s.confByName[req.PathParams["ConferenceSid"]]
	}
	if conf == nil || conf.ended {
		s.restLog(req, 404, "no such active conference")
		return notFound(req)
	}
	now := s.clock.Now()
	if !s.lastCreate.IsZero() && now.Sub(s.lastCreate) < participantInterval {
		s.restLog(req, 429, "faster than one participant per second")
		return http.StatusTooManyRequests, twiliofake.ErrorBody(http.StatusTooManyRequests, codeTooManyRequests, "Too Many Requests")
	}
	if !s.fromAllowedLocked(f.Get("From"), f.Get("CallToken")) {
		s.restLog(req, 400, "From not allowed")
		return badRequest(codeFromNotVerified, "The source phone number provided, "+f.Get("From")+", is not yet verified for your account. You may only make calls from phone numbers that you've verified or purchased from Twilio.")
	}
	label := f.Get("Label")
	if label != "" && conf.labels[label] {
		s.restLog(req, 400, "label in use")
		return badRequest(twiliofake.CodeLabelInUse, "Participant label "+label+" is already in use")
	}
	s.lastCreate = now
	to := f.Get("To")
	key, b := s.run.scBehavior(to)
	leg := s.newCallLocked(s.sidLocked("CA"), f.Get("From"), to, outboundAPI, key)
	leg.behavior, leg.sip = b, len(to) > 4 && to[:4] == "sip:"
	leg.cb = newStatusCallback(f.Get("StatusCallback"), methodOr(f.Get("StatusCallbackMethod")), strings.Join(f["StatusCallbackEvent"], " "))
	p := &participant{call: leg, conf: conf, label: label, startOnEnter: f.Get("StartConferenceOnEnter") != "false",
		endOnExit: f.Get("EndConferenceOnExit") == "true", left: make(chan struct{})}
	if label != "" {
		conf.labels[label] = true
	}
	leg.part = p
	timeout := 60
	if t, err := strconv.Atoi(f.Get("Timeout")); err == nil && t > 0 {
		timeout = t
	}
	s.restLog(req, 201, "dialing "+to+" into "+conf.name+" as "+label)
	out := make(chan outcome, 1)
	s.goTracked(func() { leg.ring(leg.life, out, time.Duration(timeout)*time.Second) })
	s.goTracked(func() { s.participantAnswers(p, out) })
	return http.StatusCreated, s.participantJSON(p)
}

// createCall places an outbound call (callrelay screens a conference-mode target this way):
// the target rings as the scenario says; when it answers, Twilio fetches the call's Url (after
// answering-machine detection, whose result then comes as AnsweredBy: MachineDetection
// without AsyncAmd blocks the call until it has one) and runs it as any call's TwiML, where
// the person may press a key in a <Gather> and a <Dial><Conference> joins a conference. It
// is paced with CreateParticipant (Twilio's calls per second).
func (s *Sim) createCall(req twiliofake.Request) (int, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := req.Form
	now := s.clock.Now()
	if !s.lastCreate.IsZero() && now.Sub(s.lastCreate) < participantInterval {
		s.restLog(req, 429, "faster than one call per second")
		return http.StatusTooManyRequests, twiliofake.ErrorBody(http.StatusTooManyRequests, codeTooManyRequests, "Too Many Requests")
	}
	if !s.fromAllowedLocked(f.Get("From"), f.Get("CallToken")) {
		s.restLog(req, 400, "From not allowed")
		return badRequest(codeFromNotVerified, "The source phone number provided, "+f.Get("From")+", is not yet verified for your account. You may only make calls from phone numbers that you've verified or purchased from Twilio.")
	}
	if f.Get("Url") == "" {
		s.restLog(req, 400, "no Url")
		return badRequest(21205, "Url parameter is required.")
	}
	s.lastCreate = now
	to := f.Get("To")
	key, b := s.run.scBehavior(to)
	leg := s.newCallLocked(s.sidLocked("CA"), f.Get("From"), to, outboundAPI, key)
	leg.behavior, leg.sip = b, len(to) > 4 && to[:4] == "sip:"
	leg.cb = newStatusCallback(f.Get("StatusCallback"), methodOr(f.Get("StatusCallbackMethod")), strings.Join(f["StatusCallbackEvent"], " "))
	leg.amd = f.Get("MachineDetection")
	timeout := 60
	if t, err := strconv.Atoi(f.Get("Timeout")); err == nil && t > 0 {
		timeout = t
	}
	doc := fetch{url: f.Get("Url"), method: methodOr(f.Get("Method")), what: "call url"}
	s.restLog(req, 201, "calling "+to)
	out := make(chan outcome, 1)
	s.goTracked(func() { leg.ring(leg.life, out, time.Duration(timeout)*time.Second) })
	s.goTracked(func() { s.placedAnswers(leg, out, doc) })
	return http.StatusCreated, s.callJSON(leg)
}

// placedAnswers runs a placed call's Url once it answered, or ends it as it ended.
func (s *Sim) placedAnswers(leg *call, out <-chan outcome, doc fetch) {
	var o outcome
	select {
	case o = <-out:
	case <-leg.life.Done():
		return
	}
	s.mu.Lock()
	if o.status != "in-progress" {
		leg.endLocked(o.status, "", sipExtra(leg, o.sip))
		s.mu.Unlock()
		return
	}
	if !leg.aliveLocked() {
		s.mu.Unlock()
		return
	}
	leg.progressLocked("in-progress", sipExtra(leg, 200))
	leg.executing = true
	b := leg.behavior
	if b.CarrierVoicemail {
		s.logLocked(leg.party, "carrier voicemail answers: plays its greeting, then a beep")
	}
	s.mu.Unlock()
	if leg.amd != "" {
		by, wait := "human", amdHuman
		if b.CarrierVoicemail {
			by, wait = "machine_start", amdMachine
			if leg.amd == "DetectMessageEnd" {
				by, wait = "machine_end_beep", greeting
			}
		}
		if s.clock.Sleep(leg.life, wait) != nil {
			return
		}
		s.log(leg.party, "answering-machine detection: AnsweredBy=%s", by)
		doc.params = url.Values{"AnsweredBy": {by}, "MachineDetectionDuration": {strconv.Itoa(int(wait / time.Millisecond))}}
	}
	leg.execute(doc)
}

// scBehavior is the behavior of a dialed address in the running scenario.
func (r *run) scBehavior(address string) (string, Behavior) {
	if r == nil {
		return TargetKey(address), Behavior{}
	}
	return r.sc.behavior(address)
}

func methodOr(m string) string {
	if m == http.MethodGet {
		return m
	}
	return http.MethodPost
}

// fromAllowedLocked: the masked number, or the caller's own number with its call's token.
func (s *Sim) fromAllowedLocked(from, token string) bool {
	if s.run != nil && from == s.run.sc.Number {
		return true
	}
	for _, c := range s.calls {
		if c.direction == inbound && c.from == from && token != "" && c.token == token {
			return true
		}
	}
	return false
}

// participantAnswers joins a participant whose leg answered, or ends the leg as it ended.
func (s *Sim) participantAnswers(p *participant, out <-chan outcome) {
	leg := p.call
	var o outcome
	select {
	case o = <-out:
	case <-leg.life.Done():
		s.mu.Lock()
		delete(p.conf.labels, p.label)
		s.mu.Unlock()
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if o.status != "in-progress" {
		delete(p.conf.labels, p.label)
		leg.part = nil
		leg.endLocked(o.status, "", sipExtra(leg, o.sip))
		return
	}
	if !leg.aliveLocked() {
		return
	}
	leg.progressLocked("in-progress", sipExtra(leg, 200))
	if p.conf.ended {
		leg.endLocked("completed", "hung up: the conference had ended", nil)
		return
	}
	if s.run != nil && s.run.callee == "" {
		s.run.callee = leg.party
	}
	s.joinLocked(p)
	if h := leg.behavior.HangupAfter; h > 0 {
		s.later(time.Duration(h*float64(time.Second)), func() { leg.hangup("hangs up") })
	}
}

func (s *Sim) participantLocked(req twiliofake.Request) *participant {
	conf := s.conferences[req.PathParams["ConferenceSid"]]
	if conf == nil {
		return nil
	}
	key := req.PathParams["CallSid"]
	for _, p := range conf.parts {
		if p.call.sid == key || (p.label != "" && p.label == key) {
			return p
		}
	}
	return nil
}

// updateParticipant holds or resumes a participant (the held party hears the HoldUrl), or
// changes its EndConferenceOnExit.
func (s *Sim) updateParticipant(req twiliofake.Request) (int, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.participantLocked(req)
	if p == nil {
		s.restLog(req, 404, "not a participant now")
		return notFound(req)
	}
	f := req.Form
	if f.Has("EndConferenceOnExit") {
		p.endOnExit = f.Get("EndConferenceOnExit") == "true"
	}
	what := ""
	if f.Has("Hold") {
		hold := f.Get("Hold") == "true"
		if hold != p.hold {
			p.hold = hold
			if hold {
				what = "hold " + p.call.party
				s.eventLocked(p.conf, "participant-hold", p, nil)
				if u := f.Get("HoldUrl"); u != "" {
					s.waitMusicLocked(p.call.life, p.call, u, methodOr(f.Get("HoldMethod")), "holdUrl", false)
				} else {
					s.hearLocked(p.call.party, "hold music (Twilio's default)")
				}
				for _, q := range p.conf.parts {
					if q != p && !q.hold {
						s.hearLocked(q.call.party, "silence ("+p.call.party+" on hold)")
					}
				}
			} else {
				what = "resume " + p.call.party
				s.eventLocked(p.conf, "participant-unhold", p, nil)
				for _, q := range p.conf.parts {
					if !q.hold {
						s.hearLocked(q.call.party, "talking (conference)")
					}
				}
			}
		}
	}
	s.restLog(req, 200, what)
	return http.StatusOK, s.participantJSON(p)
}

// updateCall redirects a call (Url) or ends it (Status). Twilio refuses both on a call that
// has ended, and a redirect of a call that is not in progress (21220); canceled does nothing
// to a call in progress.
func (s *Sim) updateCall(req twiliofake.Request) (int, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calls[req.PathParams["Sid"]]
	if c == nil {
		s.restLog(req, 404, "unknown call")
		return notFound(req)
	}
	f := req.Form
	if !c.aliveLocked() {
		s.restLog(req, 400, "call has ended")
		return badRequest(twiliofake.CodeInvalidCallState, "Call is not in-progress. Cannot redirect.")
	}
	switch st := f.Get("Status"); {
	case st == "completed":
		s.restLog(req, 200, "hang up "+c.party)
		status := "completed"
		if c.answered.IsZero() && c.direction != inbound {
			status = "canceled"
		}
		c.endLocked(status, "hung up by the REST API", nil)
	case st == "canceled":
		if c.status == "in-progress" {
			s.restLog(req, 200, "cancel has no effect on a call in progress")
			break
		}
		s.restLog(req, 200, "cancel "+c.party)
		c.endLocked("canceled", "canceled by the REST API", nil)
	case f.Has("Url"):
		if c.status != "in-progress" {
			s.restLog(req, 400, "redirect of a call not in progress")
			return badRequest(twiliofake.CodeInvalidCallState, "Call is not in-progress. Cannot redirect.")
		}
		if f.Has("StatusCallback") {
			c.cb = newStatusCallback(f.Get("StatusCallback"), methodOr(f.Get("StatusCallbackMethod")), strings.Join(f["StatusCallbackEvent"], " "))
		}
		s.restLog(req, 200, "redirect "+c.party)
		c.redirectLocked(fetch{url: f.Get("Url"), method: methodOr(f.Get("Method")), what: "redirect (UpdateCall)"})
	case f.Has("Twiml"):
		s.restLog(req, 501, "inline Twiml")
		return http.StatusNotImplemented, twiliofake.ErrorBody(http.StatusNotImplemented, twiliofake.CodeNotImplemented, "callsim does not simulate inline Twiml")
	default:
		s.restLog(req, 200, "no change")
	}
	return http.StatusOK, s.callJSON(c)
}

func (s *Sim) deleteQueue(req twiliofake.Request) (int, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queues[req.PathParams["Sid"]]
	if q == nil {
		s.restLog(req, 404, "unknown queue")
		return notFound(req)
	}
	if len(q.members) > 0 {
		s.restLog(req, 400, "queue not empty")
		return badRequest(twiliofake.CodeQueueNotEmpty, "Queue is not empty")
	}
	delete(s.queues, q.sid)
	if s.queueByName[q.name] == q {
		delete(s.queueByName, q.name)
	}
	s.restLog(req, 204, "queue "+q.name+" deleted")
	return http.StatusNoContent, nil
}

func date(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return twilioTime(t)
}

func (s *Sim) accountPath() string { return "/2010-04-01/Accounts/" + s.cfg.AccountSID }

func (s *Sim) participantJSON(p *participant) map[string]any {
	status := "connected"
	switch p.call.status {
	case "queued", "initiated":
		status = "queued"
	case "ringing":
		status = "ringing"
	case "in-progress":
	default:
		status = "complete"
	}
	var label any
	if p.label != "" {
		label = p.label
	}
	return map[string]any{
		"account_sid": s.cfg.AccountSID, "call_sid": p.call.sid, "label": label, "conference_sid": p.conf.sid,
		"date_created": date(p.call.created), "date_updated": date(s.clock.Now()),
		"end_conference_on_exit": p.endOnExit, "start_conference_on_enter": p.startOnEnter,
		"muted": false, "hold": p.hold, "coaching": false, "call_sid_to_coach": nil, "status": status, "queue_time": nil,
		"uri": s.accountPath() + "/Conferences/" + p.conf.sid + "/Participants/" + p.call.sid + ".json",
	}
}

func (s *Sim) callJSON(c *call) map[string]any {
	var parent any
	if c.parentSid != "" {
		parent = c.parentSid
	}
	return map[string]any{
		"sid": c.sid, "account_sid": s.cfg.AccountSID, "parent_call_sid": parent, "to": c.to, "from": c.from,
		"status": c.status, "direction": c.direction, "date_created": date(c.created), "date_updated": date(s.clock.Now()),
		"start_time": date(c.answered), "end_time": date(c.done), "api_version": "2010-04-01",
		"uri": s.accountPath() + "/Calls/" + c.sid + ".json",
	}
}

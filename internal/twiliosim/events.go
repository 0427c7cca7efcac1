package twiliosim

import (
	"strconv"
	"strings"
	"time"

	"github.com/callrelay/callrelay/internal/twiliofake"
)

// onEvent is the engine's side of every change to the model, whoever made it (callrelay's
// REST requests, the engine's own calls): what Twilio does next. It runs with s.mu held, as
// the model's change does (twiliofake.Event).
func (s *Sim) onEvent(e twiliofake.Event) {
	switch e.Kind {
	case twiliofake.EventCallPlaced:
		s.placedLocked(e)
	case twiliofake.EventCallStatus:
		if c := s.calls[e.Call.Sid]; c != nil {
			c.statusChangedLocked(e)
		}
	case twiliofake.EventCallRedirected:
		if c := s.calls[e.Call.Sid]; c != nil {
			s.redirectedLocked(c, e)
		}
	case twiliofake.EventParticipantJoined:
		s.joinedLocked(e)
	case twiliofake.EventParticipantLeft:
		s.leftLocked(e)
	case twiliofake.EventParticipantHold:
		s.holdLocked(e)
	case twiliofake.EventConferenceStarted:
		s.startedLocked(e)
	case twiliofake.EventConferenceEnded:
		s.endedLocked(e)
	}
}

// logREST puts each REST request callrelay made on the timeline, with Twilio's answer.
func (s *Sim) logREST(r twiliofake.Request) {
	op := r.Operation
	if op == "" {
		op = r.Method
	}
	what := ""
	if r.Code != 0 {
		what = " " + strconv.Itoa(r.Code) + " " + r.Message
	}
	s.log("twilio", "← %s %s → %d%s", op, r.Path, r.Status, what)
}

// placedLocked: callrelay placed a call (CreateCall, or CreateParticipant into a conference).
// The target rings as the scenario says. A participant joins the conference when it answers;
// a call placed with a Url runs it when it answers (after answering-machine detection, whose
// result then comes as AnsweredBy: MachineDetection without AsyncAmd blocks the call until it
// has one), where the person may press a key in a <Gather> and a <Dial><Conference> joins.
func (s *Sim) placedLocked(e twiliofake.Event) {
	f := e.Request.Form
	to := e.Call.To
	key, b := s.run.scBehavior(to)
	leg := s.newCallLocked(e.Call, key)
	leg.behavior, leg.sip = b, strings.HasPrefix(to, "sip:")
	leg.cb = newStatusCallback(f.Get("StatusCallback"), methodOr(f.Get("StatusCallbackMethod")), strings.Join(f["StatusCallbackEvent"], " "))
	timeout := 60
	if t, err := strconv.Atoi(f.Get("Timeout")); err == nil && t > 0 {
		timeout = t
	}
	out := make(chan outcome, 1)
	s.goTracked(func() { leg.ring(leg.life, out, time.Duration(timeout)*time.Second) })
	if e.Participant != nil {
		conf := s.conferenceLocked(e.Conference, conferenceCallback(f.Get("ConferenceStatusCallback"),
			methodOr(f.Get("ConferenceStatusCallbackMethod")), strings.Join(f["ConferenceStatusCallbackEvent"], " ")))
		p := &participant{rec: e.Participant, call: leg, conf: conf, left: make(chan struct{})}
		leg.part = p
		s.logLocked("twilio", "dialing %s into %s as %s", to, conf.rec.FriendlyName, e.Participant.Label)
		s.goTracked(func() { s.participantAnswers(p, out) })
		return
	}
	leg.amd = f.Get("MachineDetection")
	doc := fetch{url: e.Call.URL, method: e.Call.Method, twiml: e.Call.Twiml, what: "call url"}
	s.logLocked("twilio", "calling %s", to)
	s.goTracked(func() { s.placedAnswers(leg, out, doc) })
}

// redirectedLocked: callrelay sent a call to new TwiML (UpdateCall with Url or Twiml, a
// StatusCallback with it replacing the call's; UpdateMember dequeuing it).
func (s *Sim) redirectedLocked(c *call, e twiliofake.Event) {
	what := "redirect (UpdateCall)"
	if r := e.Request; r != nil && r.Operation == "UpdateMember" {
		what = "dequeued (UpdateMember)"
	} else if r != nil && r.Form.Has("StatusCallback") {
		f := r.Form
		c.cb = newStatusCallback(f.Get("StatusCallback"), methodOr(f.Get("StatusCallbackMethod")), strings.Join(f["StatusCallbackEvent"], " "))
	}
	c.redirectLocked(fetch{url: e.Call.URL, method: methodOr(e.Call.Method), twiml: e.Call.Twiml, what: what})
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
	if o.status != twiliofake.StatusInProgress {
		leg.endLocked(o.status, "", sipExtra(leg, o.sip))
		s.mu.Unlock()
		return
	}
	if !leg.aliveLocked() {
		s.mu.Unlock()
		return
	}
	leg.progressLocked(twiliofake.StatusInProgress, sipExtra(leg, 200))
	leg.executing = true
	b := leg.behavior
	if b.CarrierVoicemail {
		s.logLocked(leg.party, "carrier voicemail answers: plays its greeting, then a beep")
	}
	s.mu.Unlock()
	if leg.amd != "" {
		by, wait := amdResult(leg.amd, b)
		if s.clock.Sleep(leg.life, wait) != nil {
			return
		}
		s.log(leg.party, "answering-machine detection: AnsweredBy=%s", by)
		doc.params = map[string][]string{"AnsweredBy": {by}, "MachineDetectionDuration": {strconv.Itoa(int(wait / time.Millisecond))}}
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
	if m == "GET" {
		return m
	}
	return "POST"
}

// participantAnswers joins a participant whose leg answered (the model does, as the call goes
// in progress), or ends the leg as it ended. A leg that answers after its conference ended is
// hung up.
func (s *Sim) participantAnswers(p *participant, out <-chan outcome) {
	leg := p.call
	var o outcome
	select {
	case o = <-out:
	case <-leg.life.Done():
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if o.status != twiliofake.StatusInProgress {
		leg.endLocked(o.status, "", sipExtra(leg, o.sip))
		return
	}
	if !leg.aliveLocked() {
		return
	}
	if s.run != nil && s.run.callee == "" && p.rec.Conference.Status != twiliofake.StatusCompleted {
		s.run.callee = leg.party
	}
	leg.progressLocked(twiliofake.StatusInProgress, sipExtra(leg, 200))
	if !p.rec.Joined {
		leg.endLocked(twiliofake.StatusCompleted, "hung up: the conference had ended", nil)
		return
	}
	if h := leg.behavior.HangupAfter; h > 0 {
		s.later(time.Duration(h*float64(time.Second)), func() { leg.hangup("hangs up") })
	}
}

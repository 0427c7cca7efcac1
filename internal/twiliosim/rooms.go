package twiliosim

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/callrelay/callrelay/internal/twiliofake"
)

// conference is the engine's side of a conference of the model: where its events go, and
// how many it has sent. Guarded by Sim.mu.
type conference struct {
	rec *twiliofake.Conference
	seq int // SequenceNumber of its events: counted per conference
	cb  statusCallback
}

// participant is the engine's side of a call in a conference, or on its way (a participant
// being dialed): what it hears while it waits, and left, closed when it leaves the room.
type participant struct {
	rec                 *twiliofake.Participant // the model's, once it has one
	call                *call
	conf                *conference
	waitURL, waitMethod string
	left                chan struct{}
}

// conferenceEvents maps statusCallbackEvent words to the events they ask for.
var conferenceEvents = map[string][]string{
	"start": {"conference-start"}, "end": {"conference-end"}, "join": {"participant-join"},
	"leave": {"participant-leave"}, "hold": {"participant-hold", "participant-unhold"},
	"mute": {"participant-mute", "participant-unmute"}, "modify": {"participant-modify"},
}

func conferenceCallback(rawURL, method, events string) statusCallback {
	cb := statusCallback{url: rawURL, method: method, events: map[string]bool{}}
	for _, w := range strings.Fields(strings.ReplaceAll(events, ",", " ")) {
		for _, e := range conferenceEvents[w] {
			cb.events[e] = true
		}
	}
	return cb
}

// conferenceLocked returns the engine's side of a conference of the model, making it (with
// cb) the first time.
func (s *Sim) conferenceLocked(rec *twiliofake.Conference, cb statusCallback) *conference {
	if conf := s.conferences[rec.Sid]; conf != nil {
		return conf
	}
	conf := &conference{rec: rec, cb: cb}
	s.conferences[rec.Sid] = conf
	s.logLocked("twilio", "conference %s (%s) created", rec.FriendlyName, rec.Sid)
	return conf
}

// eventLocked sends a conference event to the conference's statusCallback, numbered per
// conference; p is the participant it is about, if any.
func (s *Sim) eventLocked(conf *conference, event string, p *twiliofake.Participant, extra url.Values) {
	if conf.cb.url == "" || !conf.cb.events[event] {
		conf.seq++ // Twilio numbers every event, sent or not
		return
	}
	v := url.Values{
		"AccountSid":          {s.cfg.AccountSID},
		"ConferenceSid":       {conf.rec.Sid},
		"FriendlyName":        {conf.rec.FriendlyName},
		"StatusCallbackEvent": {event},
		"SequenceNumber":      {strconv.Itoa(conf.seq)},
		"Timestamp":           {twilioTime(s.clock.Now())},
	}
	conf.seq++
	party := "twilio"
	if p != nil {
		party = s.partyLocked(p.Call)
		v.Set("CallSid", p.Call.Sid)
		if p.Label != "" {
			v.Set("ParticipantLabel", p.Label)
		}
		v.Set("Hold", strconv.FormatBool(p.Hold))
		v.Set("Muted", strconv.FormatBool(p.Muted))
		v.Set("Coaching", strconv.FormatBool(p.Coaching))
		v.Set("EndConferenceOnExit", strconv.FormatBool(p.EndConferenceOnExit))
		v.Set("StartConferenceOnEnter", strconv.FormatBool(p.StartConferenceOnEnter))
	}
	for k, vs := range extra {
		v[k] = vs
	}
	s.callbackLocked(webhook{method: conf.cb.method, url: conf.cb.url, params: v, what: event, party: party})
}

// partyLocked is a call's name on the timeline.
func (s *Sim) partyLocked(rec *twiliofake.Call) string {
	if c := s.calls[rec.Sid]; c != nil {
		return c.party
	}
	return rec.Sid
}

// joinedLocked: a participant is in the room (the model's EventParticipantJoined). It hears
// the conference if it has started, else the wait music.
func (s *Sim) joinedLocked(e twiliofake.Event) {
	c := s.calls[e.Call.Sid]
	conf := s.conferenceLocked(e.Conference, statusCallback{})
	p := c.part
	if p == nil || (p.rec != nil && p.rec != e.Participant) {
		p = &participant{call: c, conf: conf, left: make(chan struct{})}
		c.part = p
	}
	p.rec = e.Participant
	s.logLocked(c.party, "joins conference %s", conf.rec.FriendlyName)
	s.eventLocked(conf, "participant-join", e.Participant, nil)
	switch {
	case conf.rec.Started:
		s.hearLocked(c.party, "talking (conference)")
	case p.waitURL != "":
		s.waitMusicLocked(c.life, c, p.waitURL, p.waitMethod, "conference waitUrl", false)
	}
}

// startedLocked: the conference started with a participant's join (who hears it already);
// the others stop waiting.
func (s *Sim) startedLocked(e twiliofake.Event) {
	s.eventLocked(s.conferenceLocked(e.Conference, statusCallback{}), "conference-start", nil, nil)
	for _, p := range e.Conference.Participants {
		if p.Joined && p != e.Participant {
			s.hearLocked(s.partyLocked(p.Call), "talking (conference)")
		}
	}
}

// leftLocked: a participant left the room. Whatever waited on it goes on (its <Dial> ends); a
// participant the REST API added has no TwiML after the conference, and hangs up when the
// conference ends. One that was being dialed never was in the room: nothing to tell.
func (s *Sim) leftLocked(e twiliofake.Event) {
	if !e.Participant.Joined {
		return
	}
	c := s.calls[e.Call.Sid]
	p := c.part
	c.part = nil
	s.eventLocked(s.conferenceLocked(e.Conference, statusCallback{}), "participant-leave", e.Participant,
		url.Values{"ReasonParticipantLeft": {e.Reason}})
	if p != nil {
		close(p.left)
	}
	if e.Reason == twiliofake.LeftConferenceEnded && !c.executing {
		c.endLocked(twiliofake.StatusCompleted, "hung up: the conference ended", nil)
	}
}

// endedLocked: the conference is over (its participants have left).
func (s *Sim) endedLocked(e twiliofake.Event) {
	conf := s.conferenceLocked(e.Conference, statusCallback{})
	extra := url.Values{"ReasonConferenceEnded": {e.Reason}}
	if e.Conference.EndingCallSid != "" {
		extra.Set("CallSidEndingConference", e.Conference.EndingCallSid)
	}
	s.eventLocked(conf, "conference-end", nil, extra)
	s.logLocked("twilio", "conference %s ended (%s)", conf.rec.FriendlyName, e.Reason)
}

// holdLocked: callrelay held or resumed a participant (UpdateParticipant Hold). The held one
// hears the HoldUrl (or Twilio's music), the others silence; resumed, all talk again.
func (s *Sim) holdLocked(e twiliofake.Event) {
	mp := e.Participant
	c := s.calls[mp.Call.Sid]
	if !mp.Joined || c == nil {
		return
	}
	conf := s.conferenceLocked(e.Conference, statusCallback{})
	if mp.Hold {
		s.logLocked("twilio", "hold %s", c.party)
		s.eventLocked(conf, "participant-hold", mp, nil)
		if mp.HoldURL != "" {
			s.waitMusicLocked(c.life, c, mp.HoldURL, methodOr(mp.HoldMethod), "holdUrl", false)
		} else {
			s.hearLocked(c.party, "hold music (Twilio's default)")
		}
		for _, q := range e.Conference.Participants {
			if q != mp && q.Joined && !q.Hold {
				s.hearLocked(s.partyLocked(q.Call), "silence ("+c.party+" on hold)")
			}
		}
		return
	}
	s.logLocked("twilio", "resume %s", c.party)
	s.eventLocked(conf, "participant-unhold", mp, nil)
	for _, q := range e.Conference.Participants {
		if q.Joined && !q.Hold {
			s.hearLocked(s.partyLocked(q.Call), "talking (conference)")
		}
	}
}

// dialConference puts the caller in a conference until it ends, the caller is redirected or
// hangs up.
func (c *call) dialConference(ctx context.Context, n node, action fetch) (*fetch, error) {
	s := c.s
	s.mu.Lock()
	rec := s.model.ActiveConference(n.text())
	if rec == nil {
		rec = s.model.NewConference("", n.text())
	}
	conf := s.conferenceLocked(rec, conferenceCallback(n.attr("statusCallback"), methodOf(n, "statusCallbackMethod"), n.attr("statusCallbackEvent")))
	p := &participant{call: c, conf: conf, waitURL: n.attr("waitUrl"), waitMethod: methodOf(n, "waitMethod"), left: make(chan struct{})}
	c.answerInboundLocked()
	if c.rec.Direction == outboundAPI {
		// A call callrelay placed, joining after its screen: the callee, talking from now.
		if s.run != nil && s.run.callee == "" {
			s.run.callee = c.party
		}
		if h := c.behavior.HangupAfter; h > 0 {
			s.later(time.Duration(h*float64(time.Second)), func() { c.hangup("hangs up") })
		}
	}
	c.part = p
	_, err := s.model.Join(rec, c.rec, twiliofake.JoinOptions{Label: n.attr("participantLabel"),
		StartConferenceOnEnter: n.attr("startConferenceOnEnter") != "false", EndConferenceOnExit: n.attr("endConferenceOnExit") == "true"})
	s.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("<Dial><Conference>: %w", err)
	}

	select {
	case <-p.left:
	case <-ctx.Done():
	}
	p2 := url.Values{"DialCallStatus": {"answered"}, "ConferenceSid": {rec.Sid}}
	if ctx.Err() != nil {
		c.ignore(withParams(action, p2)) // a modified parent still posts its Dial action
		return nil, ctx.Err()
	}
	return c.after(action, p2)
}

// queue is the engine's side of a queue of the model: arrived is closed (and replaced) when
// a member joins. Guarded by Sim.mu.
type queue struct {
	rec     *twiliofake.Queue
	arrived chan struct{}
}

// member is the engine's side of a call waiting in a queue: dequeued gets the bridge a
// <Dial><Queue> made.
type member struct {
	rec      *twiliofake.Member
	joined   time.Time
	dequeued chan *bridge
}

// queueLocked returns the engine's side of the queue of this name, making both sides as
// <Enqueue> and <Dial><Queue> do when there is none.
func (s *Sim) queueLocked(name string) *queue {
	rec := s.model.QueueNamed(name)
	if rec == nil {
		rec = s.model.NewQueue("", name)
	}
	if q := s.queues[rec.Sid]; q != nil {
		return q
	}
	q := &queue{rec: rec, arrived: make(chan struct{})}
	s.queues[rec.Sid] = q
	return q
}

// enqueue waits in a queue, hearing its waitUrl, until dequeued by a <Dial><Queue>,
// redirected, or hung up; the action then tells how it left (QueueResult).
func (c *call) enqueue(ctx context.Context, v node) (*fetch, error) {
	s := c.s
	action := fetch{url: v.attr("action"), method: methodOf(v, "method"), what: "enqueue action"}
	s.mu.Lock()
	q := s.queueLocked(v.text())
	m := &member{rec: s.model.Enqueue(q.rec, c.rec), joined: s.clock.Now(), dequeued: make(chan *bridge, 1)}
	c.member = m
	close(q.arrived)
	q.arrived = make(chan struct{})
	s.logLocked(c.party, "waits in queue %s (%s)", q.rec.FriendlyName, q.rec.Sid)
	waitCtx, stopWait := context.WithCancel(ctx)
	if u := v.attr("waitUrl"); u != "" {
		s.waitMusicLocked(waitCtx, c, u, methodOf(v, "waitUrlMethod"), "queue waitUrl", true)
	}
	s.mu.Unlock()
	defer stopWait()

	result := func(r string) url.Values {
		return url.Values{"QueueResult": {r}, "QueueSid": {q.rec.Sid},
			"QueueTime": {strconv.Itoa(int(s.clock.Now().Sub(m.joined).Seconds()))}}
	}
	var br *bridge
	select {
	case br = <-m.dequeued:
		stopWait()
		select {
		case <-br.done:
		case <-ctx.Done():
		}
	case <-ctx.Done():
	}
	if ctx.Err() != nil {
		r := "hangup"
		if c.alive() {
			r = "redirected"
			if br != nil {
				r = "redirected-from-bridged"
			}
		}
		c.ignore(withParams(action, result(r)))
		return nil, ctx.Err()
	}
	return c.after(action, result("bridged"))
}

// dialQueue takes the first caller out of a queue and bridges it, waiting up to timeout for
// one to arrive.
func (c *call) dialQueue(ctx context.Context, n node, action fetch, timeout time.Duration) (*fetch, error) {
	s := c.s
	deadline := time.NewTimer(s.clock.Real(timeout))
	defer deadline.Stop()
	var br *bridge
	var caller *call
	var queueSid string
	for br == nil {
		s.mu.Lock()
		q := s.queueLocked(n.text())
		queueSid = q.rec.Sid
		if len(q.rec.Members) > 0 && c.aliveLocked() {
			m := q.rec.Members[0]
			s.model.Dequeue(m)
			caller = s.calls[m.Call.Sid]
			c.answerInboundLocked()
			br = s.bridgeLocked(c, caller)
			caller.member.dequeued <- br
			s.logLocked(c.party, "dequeues %s from %s", caller.party, q.rec.FriendlyName)
			s.mu.Unlock()
			break
		}
		arrived := q.arrived
		s.mu.Unlock()
		select {
		case <-arrived:
		case <-deadline.C:
			return c.after(action, url.Values{"DialCallStatus": {"no-answer"}, "QueueSid": {q.rec.Sid}})
		case <-ctx.Done():
			c.ignore(withParams(action, url.Values{"DialCallStatus": {"canceled"}}))
			return nil, ctx.Err()
		}
	}
	select {
	case <-br.done:
	case <-ctx.Done():
	}
	s.mu.Lock()
	s.endBridgeLocked(br, c, "hangup")
	p := dialParams("completed", caller.sid, br, s.clock.Now())
	p.Set("QueueSid", queueSid)
	leaver := br.leaver
	s.mu.Unlock()
	if leaver == c {
		c.ignore(withParams(action, p))
		return nil, ctx.Err()
	}
	return c.after(action, p)
}

// waitMusicLocked fetches the TwiML a waiting party hears (a queue's or conference's waitUrl,
// a held participant's holdUrl). With loop it runs it, again and again, until ctx ends (a
// queue); without, it is fetched once and only checked (a conference's waitUrl, a hold: the
// simulation does not need what plays there). s.mu is held.
func (s *Sim) waitMusicLocked(ctx context.Context, c *call, rawURL, method, what string, loop bool) {
	s.hearLocked(c.party, "hold music ("+what+" "+path(rawURL)+")")
	once := !loop
	s.goTracked(func() {
		next := &fetch{url: rawURL, method: method, what: what}
		for next != nil && ctx.Err() == nil {
			doc, err := c.fetchTwiML(ctx, *next)
			if err != nil {
				if ctx.Err() == nil {
					s.fail("%s: %v", c.party, err)
				}
				return
			}
			if once {
				return
			}
			next = &fetch{url: rawURL, method: method, what: what}
			for _, v := range doc.Children {
				var err error
				switch v.XMLName.Local {
				case "Say":
					err = c.say(ctx, v)
				case "Play":
					err = c.play(ctx, v)
				case "Pause":
					var l int
					if l, err = v.intAttr("length", 1); err == nil {
						err = s.clock.Sleep(ctx, time.Duration(l)*time.Second)
					}
				case "Redirect":
					next = &fetch{url: resolve(rawURL, v.text()), method: methodOf(v, "method"), what: what}
				}
				if err != nil || v.XMLName.Local == "Redirect" {
					break
				}
			}
			if ctx.Err() == nil {
				// A document that ends at once would loop fast: Twilio plays it again.
				if s.clock.Sleep(ctx, time.Second) != nil {
					return
				}
			}
		}
	})
}

package twiliosim

import (
	"context"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// conference is a Twilio conference room. Guarded by Sim.mu.
type conference struct {
	sid, name string
	seq       int // SequenceNumber of its events: counted per conference
	cb        statusCallback
	started   bool
	ended     bool
	parts     []*participant // joined, in join order
	labels    map[string]bool
}

// participant is a call in a conference (or on its way: a participant being rung).
type participant struct {
	call                    *call
	conf                    *conference
	label                   string
	startOnEnter, endOnExit bool
	hold                    bool
	joined                  bool
	waitURL, waitMethod     string
	left                    chan struct{}
}

// conferenceEvents maps statusCallbackEvent words to the events they ask for.
var conferenceEvents = map[string][]string{
	"start": {"conference-start"}, "end": {"conference-end"}, "join": {"participant-join"},
	"leave": {"participant-leave"}, "hold": {"participant-hold", "participant-unhold"},
	"mute": {"participant-mute", "participant-unmute"}, "modify": {"participant-modify"},
}

func (s *Sim) conferenceLocked(name string, n node) *conference {
	if conf := s.confByName[name]; conf != nil {
		return conf
	}
	conf := &conference{sid: s.sidLocked("CF"), name: name, labels: map[string]bool{}}
	cb := statusCallback{url: n.attr("statusCallback"), method: methodOf(n, "statusCallbackMethod"), events: map[string]bool{}}
	for _, w := range strings.Fields(n.attr("statusCallbackEvent")) {
		for _, e := range conferenceEvents[w] {
			cb.events[e] = true
		}
	}
	conf.cb = cb
	s.conferences[conf.sid], s.confByName[name] = conf, conf
	s.logLocked("twilio", "conference %s (%s) created", name, conf.sid)
	return conf
}

// eventLocked sends a conference event to the conference's statusCallback, numbered per
// conference.
func (s *Sim) eventLocked(conf *conference, event string, p *participant, extra url.Values) {
	if conf.cb.url == "" || !conf.cb.events[event] {
		conf.seq++ // Twilio numbers every event, sent or not
		return
	}
	v := url.Values{
		"AccountSid":          {s.cfg.AccountSID},
		"ConferenceSid":       {conf.sid},
		"FriendlyName":        {conf.name},
		"StatusCallbackEvent": {event},
		"SequenceNumber":      {strconv.Itoa(conf.seq)},
		"Timestamp":           {twilioTime(s.clock.Now())},
	}
	conf.seq++
	party := "twilio"
	if p != nil {
		party = p.call.party
		v.Set("CallSid", p.call.sid)
		if p.label != "" {
			v.Set("ParticipantLabel", p.label)
		}
		v.Set("Hold", strconv.FormatBool(p.hold))
		v.Set("Muted", "false")
		v.Set("Coaching", "false")
		v.Set("EndConferenceOnExit", strconv.FormatBool(p.endOnExit))
		v.Set("StartConferenceOnEnter", strconv.FormatBool(p.startOnEnter))
	}
	for k, vs := range extra {
		v[k] = vs
	}
	s.callbackLocked(webhook{method: conf.cb.method, url: conf.cb.url, params: v, what: event, party: party})
}

// joinLocked puts an answered participant in its conference; the conference starts when a
// participant with startConferenceOnEnter joins and two are there.
func (s *Sim) joinLocked(p *participant) {
	conf := p.conf
	p.joined = true
	conf.parts = append(conf.parts, p)
	p.call.part = p
	s.logLocked(p.call.party, "joins conference %s", conf.name)
	s.eventLocked(conf, "participant-join", p, nil)
	if !conf.started && len(conf.parts) >= 2 && slices.ContainsFunc(conf.parts, func(q *participant) bool { return q.startOnEnter }) {
		conf.started = true
		s.eventLocked(conf, "conference-start", nil, nil)
		for _, q := range conf.parts {
			s.hearLocked(q.call.party, "talking (conference)")
		}
		return
	}
	if conf.started {
		s.hearLocked(p.call.party, "talking (conference)")
	} else if p.waitURL != "" {
		s.waitMusicLocked(p.call.life, p.call, p.waitURL, p.waitMethod, "conference waitUrl", false)
	}
}

// leaveConferenceLocked takes a participant out; one with endConferenceOnExit, or the last
// one, ends the conference.
func (s *Sim) leaveConferenceLocked(p *participant, reason string) {
	conf := p.conf
	p.call.part = nil
	if !p.joined {
		return
	}
	i := slices.Index(conf.parts, p)
	if i < 0 {
		return
	}
	conf.parts = slices.Delete(conf.parts, i, i+1)
	delete(conf.labels, p.label)
	s.eventLocked(conf, "participant-leave", p, url.Values{"ReasonParticipantLeft": {reason}})
	close(p.left)
	switch {
	case p.endOnExit:
		s.endConferenceLocked(conf, "participant-with-end-conference-on-exit-left", p.call.sid)
	case len(conf.parts) == 0:
		s.endConferenceLocked(conf, "last-participant-left", p.call.sid)
	}
}

// endConferenceLocked ends a conference: the callers' <Dial> ends (DialCallStatus=answered),
// and participants added by the REST API, which have no TwiML after it, hang up.
func (s *Sim) endConferenceLocked(conf *conference, reason, endingSid string) {
	if conf.ended {
		return
	}
	conf.ended = true
	delete(s.confByName, conf.name)
	for _, p := range slices.Clone(conf.parts) {
		conf.parts = slices.DeleteFunc(conf.parts, func(q *participant) bool { return q == p })
		p.call.part = nil
		s.eventLocked(conf, "participant-leave", p, url.Values{"ReasonParticipantLeft": {"conference_ended"}})
		close(p.left)
		if !p.call.executing {
			p.call.endLocked("completed", "hung up: the conference ended", nil)
		}
	}
	s.eventLocked(conf, "conference-end", nil, url.Values{"ReasonConferenceEnded": {reason}, "CallSidEndingConference": {endingSid}})
	s.logLocked("twilio", "conference %s ended (%s)", conf.name, reason)
}

// dialConference puts the caller in a conference until it ends, the caller is redirected or
// hangs up.
func (c *call) dialConference(ctx context.Context, n node, action fetch) (*fetch, error) {
	s := c.s
	s.mu.Lock()
	conf := s.conferenceLocked(n.text(), n)
	p := &participant{call: c, conf: conf, label: n.attr("participantLabel"),
		startOnEnter: n.attr("startConferenceOnEnter") != "false", endOnExit: n.attr("endConferenceOnExit") == "true",
		waitURL: n.attr("waitUrl"), waitMethod: methodOf(n, "waitMethod"), left: make(chan struct{})}
	c.answerInboundLocked()
	if c.direction == outboundAPI {
		// A call callrelay placed, joining after its screen: the callee, talking from now.
		if s.run != nil && s.run.callee == "" {
			s.run.callee = c.party
		}
		if h := c.behavior.HangupAfter; h > 0 {
			s.later(time.Duration(h*float64(time.Second)), func() { c.hangup("hangs up") })
		}
	}
	s.joinLocked(p)
	s.mu.Unlock()

	select {
	case <-p.left:
	case <-ctx.Done():
	}
	p2 := url.Values{"DialCallStatus": {"answered"}, "ConferenceSid": {conf.sid}}
	if ctx.Err() != nil {
		c.ignore(withParams(action, p2)) // a modified parent still posts its Dial action
		return nil, ctx.Err()
	}
	return c.after(action, p2)
}

// queue is a Twilio call queue. Guarded by Sim.mu.
type queue struct {
	sid, name string
	members   []*member
	arrived   chan struct{} // closed (and replaced) when a member joins
}

type member struct {
	call       *call
	q          *queue
	joined     time.Time
	dequeued   chan *bridge
	redirected bool
}

func (s *Sim) queueLocked(name string) *queue {
	if q := s.queueByName[name]; q != nil {
		return q
	}
	q := &queue{sid: s.sidLocked("QU"), name: name, arrived: make(chan struct{})}
	s.queues[q.sid], s.queueByName[name] = q, q
	return q
}

func (s *Sim) leaveQueueLocked(m *member) {
	m.call.member = nil
	m.q.members = slices.DeleteFunc(m.q.members, func(x *member) bool { return x == m })
}

// enqueue waits in a queue, hearing its waitUrl, until dequeued by a <Dial><Queue>,
// redirected, or hung up; the action then tells how it left (QueueResult).
func (c *call) enqueue(ctx context.Context, v node) (*fetch, error) {
	s := c.s
	action := fetch{url: v.attr("action"), method: methodOf(v, "method"), what: "enqueue action"}
	s.mu.Lock()
	q := s.queueLocked(v.text())
	m := &member{call: c, q: q, joined: s.clock.Now(), dequeued: make(chan *bridge, 1)}
	q.members = append(q.members, m)
	c.member = m
	close(q.arrived)
	q.arrived = make(chan struct{})
	s.logLocked(c.party, "waits in queue %s (%s)", q.name, q.sid)
	waitCtx, stopWait := context.WithCancel(ctx)
	if u := v.attr("waitUrl"); u != "" {
		s.waitMusicLocked(waitCtx, c, u, methodOf(v, "waitUrlMethod"), "queue waitUrl", true)
	}
	s.mu.Unlock()
	defer stopWait()

	result := func(r string) url.Values {
		return url.Values{"QueueResult": {r}, "QueueSid": {q.sid},
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
	var m *member
	for br == nil {
		s.mu.Lock()
		q := s.queueLocked(n.text())
		if len(q.members) > 0 && c.aliveLocked() {
			m = q.members[0]
			s.leaveQueueLocked(m)
			c.answerInboundLocked()
			br = s.bridgeLocked(c, m.call)
			m.dequeued <- br
			s.logLocked(c.party, "dequeues %s from %s", m.call.party, q.name)
			s.mu.Unlock()
			break
		}
		arrived := q.arrived
		s.mu.Unlock()
		select {
		case <-arrived:
		case <-deadline.C:
			return c.after(action, url.Values{"DialCallStatus": {"no-answer"}, "QueueSid": {q.sid}})
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
	p := dialParams("completed", m.call.sid, br, s.clock.Now())
	p.Set("QueueSid", m.q.sid)
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

package twiliofake

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// The fake's state: just enough of calls, conferences and queues for the operations callrelay
// uses to answer as Twilio would (404 for what does not exist, 21220 for a call not in
// progress, 16026 for a label in use). All of it is guarded by Fake.mu.

type call struct {
	sid, to, from, status, direction string
	url, method, twiml               string // the last redirect
	created, updated                 time.Time
	start, end                       time.Time
}

type conference struct {
	sid, friendlyName, status, reasonEnded string
	created, updated                       time.Time
	participants                           []*participant // active ones, in join order
}

type participant struct {
	conf                                                     *conference
	callSid, label                                           string
	hold, muted, endConferenceOnExit, startConferenceOnEnter bool
	coaching                                                 bool
	callSidToCoach, holdURL, holdMethod                      string
	created, updated                                         time.Time
}

type queue struct {
	sid, friendlyName string
	maxSize           int
	members           []*member // in queue order
	created, updated  time.Time
}

type member struct {
	callSid  string
	enqueued time.Time
}

// Call statuses: call_enum_status in the spec.
const (
	statusQueued     = "queued"
	statusRinging    = "ringing"
	statusInProgress = "in-progress"
	statusCompleted  = "completed"
	statusCanceled   = "canceled"
)

var callStatuses = []string{statusQueued, statusRinging, statusInProgress, statusCompleted, "busy", "failed", "no-answer", statusCanceled}

// ended reports whether a call status is final.
func ended(status string) bool {
	return status != statusQueued && status != statusRinging && status != statusInProgress
}

// defaultQueueMaxSize is Twilio's MaxSize for a queue created without one.
const defaultQueueMaxSize = 100

// handlers implement the operations the fake keeps state for; the others answer 501.
var handlers = map[string]func(*Fake, *Request) (int, any){
	"CreateParticipant": (*Fake).createParticipant,
	"UpdateParticipant": (*Fake).updateParticipant,
	"FetchParticipant":  (*Fake).fetchParticipant,
	"UpdateCall":        (*Fake).updateCall,
	"CreateCall":        (*Fake).createCall,
	"FetchCall":         (*Fake).fetchCall,
	"UpdateConference":  (*Fake).updateConference,
	"FetchConference":   (*Fake).fetchConference,
	"CreateQueue":       (*Fake).createQueue,
	"FetchQueue":        (*Fake).fetchQueue,
	"UpdateQueue":       (*Fake).updateQueue,
	"ListQueue":         (*Fake).listQueue,
	"DeleteQueue":       (*Fake).deleteQueue,
	"FetchMember":       (*Fake).fetchMember,
	"UpdateMember":      (*Fake).updateMember,
}

func sidPattern(prefix string) *regexp.Regexp {
	return regexp.MustCompile(`^` + prefix + `[0-9a-fA-F]{32}$`)
}

var (
	callSID       = sidPattern("CA")
	conferenceSID = sidPattern("CF")
	queueSID      = sidPattern("QU")
)

func (f *Fake) notFound(req *Request) (int, any) {
	return http.StatusNotFound, errorBody(http.StatusNotFound, CodeNotFound, notFoundMessage(req.Path))
}

func badRequest(code int, message string) (int, any) {
	return http.StatusBadRequest, errorBody(http.StatusBadRequest, code, message)
}

// notInProgress is Twilio's 21220 answer.
func notInProgress() (int, any) {
	return badRequest(CodeInvalidCallState, "Call is not in-progress. Cannot redirect.")
}

// boolField sets *dst from a boolean form field, if present (Validate has checked its value).
func boolField(form url.Values, name string, dst *bool) {
	if form.Has(name) {
		*dst = form.Get(name) == "true"
	}
}

// CreateParticipant: ConferenceSid is a CF SID of an active conference, or a friendly name
// (Twilio then joins the active conference of that name, or creates one). The participant's
// new call starts "queued".
func (f *Fake) createParticipant(req *Request) (int, any) {
	key := req.PathParams["ConferenceSid"]
	var conf *conference
	if conferenceSID.MatchString(key) {
		conf = f.conferences[key]
		if conf == nil || conf.status == statusCompleted {
			return f.notFound(req)
		}
	} else {
		for _, c := range f.conferences {
			if c.friendlyName == key && c.status != statusCompleted {
				conf = c
			}
		}
		if conf == nil {
			conf = f.addConference(f.newSid("CF"), key)
		}
	}
	form := req.Form
	label := form.Get("Label")
	if label != "" && conf.find(label) != nil {
		return badRequest(CodeLabelInUse, "Participant label is in use by another participant")
	}
	now := f.now()
	c := &call{sid: f.newSid("CA"), to: form.Get("To"), from: form.Get("From"), status: statusQueued, direction: "outbound-api", created: now, updated: now}
	f.calls[c.sid] = c
	p := &participant{conf: conf, callSid: c.sid, label: label, startConferenceOnEnter: true, created: now, updated: now}
	boolField(form, "Muted", &p.muted)
	boolField(form, "StartConferenceOnEnter", &p.startConferenceOnEnter)
	boolField(form, "EndConferenceOnExit", &p.endConferenceOnExit)
	boolField(form, "Coaching", &p.coaching)
	p.callSidToCoach = form.Get("CallSidToCoach")
	conf.participants = append(conf.participants, p)
	return http.StatusCreated, f.participantJSON(p)
}

// createCall places an outbound call: a new call, "queued", whose Url the fake keeps (it runs
// no TwiML; tests drive the call's webhooks themselves).
func (f *Fake) createCall(req *Request) (int, any) {
	form := req.Form
	now := f.now()
	c := &call{sid: f.newSid("CA"), to: form.Get("To"), from: form.Get("From"), status: statusQueued, direction: "outbound-api",
		url: form.Get("Url"), method: form.Get("Method"), twiml: form.Get("Twiml"), created: now, updated: now}
	f.calls[c.sid] = c
	return http.StatusCreated, f.callJSON(c)
}

// UpdateParticipant: {CallSid} is the participant's call SID or label.
func (f *Fake) updateParticipant(req *Request) (int, any) {
	p := f.participantAt(req)
	if p == nil {
		return f.notFound(req)
	}
	form := req.Form
	boolField(form, "Hold", &p.hold)
	boolField(form, "Muted", &p.muted)
	boolField(form, "EndConferenceOnExit", &p.endConferenceOnExit)
	boolField(form, "Coaching", &p.coaching)
	if form.Has("CallSidToCoach") {
		p.callSidToCoach = form.Get("CallSidToCoach")
	}
	if form.Has("HoldUrl") {
		p.holdURL = form.Get("HoldUrl")
	}
	if form.Has("HoldMethod") {
		p.holdMethod = form.Get("HoldMethod")
	}
	p.updated = f.now()
	return http.StatusOK, f.participantJSON(p)
}

func (f *Fake) fetchParticipant(req *Request) (int, any) {
	p := f.participantAt(req)
	if p == nil {
		return f.notFound(req)
	}
	return http.StatusOK, f.participantJSON(p)
}

func (f *Fake) participantAt(req *Request) *participant {
	conf := f.conferences[req.PathParams["ConferenceSid"]]
	if conf == nil {
		return nil
	}
	return conf.find(req.PathParams["CallSid"])
}

// find returns the active participant with this call SID or label.
func (c *conference) find(callSidOrLabel string) *participant {
	for _, p := range c.participants {
		if p.callSid == callSidOrLabel || (p.label != "" && p.label == callSidOrLabel) {
			return p
		}
	}
	return nil
}

// UpdateCall. Status=completed hangs the call up, whatever its state. Status=canceled hangs
// up a queued or ringing call and, as Twilio's Call resource docs put it, "will not affect
// calls already in progress": 200, and the call goes on (quoted from memory of the docs, not
// re-checked: the reference material here does not have that page). Either on a call that has ended, and a
// redirect (Url or Twiml) of a call not in progress, answer 21220. A redirect takes the call
// out of its conference or queue, as new TwiML replaces the <Dial> or <Enqueue>.
func (f *Fake) updateCall(req *Request) (int, any) {
	c := f.calls[req.PathParams["Sid"]]
	if c == nil {
		return f.notFound(req)
	}
	form := req.Form
	switch status := form.Get("Status"); {
	case status != "":
		if ended(c.status) {
			return notInProgress()
		}
		if status == statusCompleted || c.status != statusInProgress {
			f.endCall(c, status)
		}
	case form.Has("Url") || form.Has("Twiml"):
		if c.status != statusInProgress {
			return notInProgress()
		}
		c.url, c.method, c.twiml = form.Get("Url"), form.Get("Method"), form.Get("Twiml")
		if c.url != "" && c.method == "" {
			c.method = http.MethodPost
		}
		c.updated = f.now()
		f.leaveRooms(c.sid)
	}
	return http.StatusOK, f.callJSON(c)
}

func (f *Fake) fetchCall(req *Request) (int, any) {
	c := f.calls[req.PathParams["Sid"]]
	if c == nil {
		return f.notFound(req)
	}
	return http.StatusOK, f.callJSON(c)
}

// setCallStatus moves a call; a final status ends it.
func (f *Fake) setCallStatus(c *call, status string) {
	if ended(status) {
		f.endCall(c, status)
		return
	}
	now := f.now()
	if status == statusInProgress && c.start.IsZero() {
		c.start = now
	}
	c.status, c.updated = status, now
}

// endCall ends a call: it leaves its conference and queue.
func (f *Fake) endCall(c *call, status string) {
	now := f.now()
	c.status, c.updated, c.end = status, now, now
	f.leaveRooms(c.sid)
}

// leaveRooms takes a call out of every conference and queue. A participant that had joined
// (its call was answered) leaving with EndConferenceOnExit, or the last participant leaving,
// ends the conference (Twilio's reason_conference_ended values say so); a callee that never
// answered was never in the conference.
func (f *Fake) leaveRooms(callSid string) {
	joined := false
	if c := f.calls[callSid]; c != nil {
		joined = !c.start.IsZero()
	}
	for _, conf := range f.conferences {
		i := slices.IndexFunc(conf.participants, func(p *participant) bool { return p.callSid == callSid })
		if i < 0 {
			continue
		}
		p := conf.participants[i]
		conf.participants = slices.Delete(conf.participants, i, i+1)
		switch {
		case p.endConferenceOnExit && joined:
			f.endConference(conf, "participant-with-end-conference-on-exit-left")
		case len(conf.participants) == 0:
			f.endConference(conf, "last-participant-left")
		}
	}
	for _, q := range f.queues {
		q.members = slices.DeleteFunc(q.members, func(m *member) bool { return m.callSid == callSid })
	}
}

// endConference completes a conference; its participants leave it (their calls are left as
// they are: what a call does next depends on its TwiML, which the fake does not run).
func (f *Fake) endConference(conf *conference, reason string) {
	if conf.status == statusCompleted {
		return
	}
	conf.status, conf.reasonEnded, conf.updated = statusCompleted, reason, f.now()
	conf.participants = nil
}

// UpdateConference: Status=completed ends the conference.
func (f *Fake) updateConference(req *Request) (int, any) {
	conf := f.conferences[req.PathParams["Sid"]]
	if conf == nil {
		return f.notFound(req)
	}
	if req.Form.Get("Status") == statusCompleted {
		f.endConference(conf, "conference-ended-via-api")
	}
	return http.StatusOK, f.conferenceJSON(conf)
}

func (f *Fake) fetchConference(req *Request) (int, any) {
	conf := f.conferences[req.PathParams["Sid"]]
	if conf == nil {
		return f.notFound(req)
	}
	return http.StatusOK, f.conferenceJSON(conf)
}

func (f *Fake) addConference(sid, friendlyName string) *conference {
	now := f.now()
	conf := &conference{sid: sid, friendlyName: friendlyName, status: statusInProgress, created: now, updated: now}
	f.conferences[sid] = conf
	return conf
}

func (f *Fake) createQueue(req *Request) (int, any) {
	q := f.addQueue(f.newSid("QU"), req.Form.Get("FriendlyName"))
	if req.Form.Has("MaxSize") {
		q.maxSize, _ = strconv.Atoi(req.Form.Get("MaxSize"))
	}
	return http.StatusCreated, f.queueJSON(q)
}

func (f *Fake) addQueue(sid, friendlyName string) *queue {
	now := f.now()
	q := &queue{sid: sid, friendlyName: friendlyName, maxSize: defaultQueueMaxSize, created: now, updated: now}
	f.queues[sid] = q
	f.queueOrder = append(f.queueOrder, q)
	return q
}

func (f *Fake) fetchQueue(req *Request) (int, any) {
	q := f.queues[req.PathParams["Sid"]]
	if q == nil {
		return f.notFound(req)
	}
	return http.StatusOK, f.queueJSON(q)
}

func (f *Fake) updateQueue(req *Request) (int, any) {
	q := f.queues[req.PathParams["Sid"]]
	if q == nil {
		return f.notFound(req)
	}
	if req.Form.Has("FriendlyName") {
		q.friendlyName = req.Form.Get("FriendlyName")
	}
	if req.Form.Has("MaxSize") {
		q.maxSize, _ = strconv.Atoi(req.Form.Get("MaxSize"))
	}
	q.updated = f.now()
	return http.StatusOK, f.queueJSON(q)
}

// ListQueue pages through the queues in creation order (PageSize, default 50, and Page).
func (f *Fake) listQueue(req *Request) (int, any) {
	size, page := 50, 0
	if v := req.Form.Get("PageSize"); v != "" {
		size, _ = strconv.Atoi(v)
	}
	if v := req.Form.Get("Page"); v != "" {
		page, _ = strconv.Atoi(v)
	}
	start := min(page*size, len(f.queueOrder))
	end := min(start+size, len(f.queueOrder))
	queues := make([]any, 0, end-start)
	for _, q := range f.queueOrder[start:end] {
		queues = append(queues, f.queueJSON(q))
	}
	list := "/2010-04-01/Accounts/" + f.AccountSID + "/Queues.json"
	pageURI := func(p int) string { return fmt.Sprintf("%s?PageSize=%d&Page=%d", list, size, p) }
	var next, prev any
	if end < len(f.queueOrder) {
		next = pageURI(page + 1)
	}
	if page > 0 {
		prev = pageURI(page - 1)
	}
	return http.StatusOK, map[string]any{
		"queues": queues, "page": page, "page_size": size, "start": start, "end": max(end-1, start),
		"uri": pageURI(page), "first_page_uri": pageURI(0), "next_page_uri": next, "previous_page_uri": prev,
	}
}

// DeleteQueue removes an empty queue ("Remove an empty queue", says the spec).
func (f *Fake) deleteQueue(req *Request) (int, any) {
	q := f.queues[req.PathParams["Sid"]]
	if q == nil {
		return f.notFound(req)
	}
	if len(q.members) > 0 {
		return badRequest(CodeQueueNotEmpty, fmt.Sprintf("Queue %s has %d members: only an empty queue can be removed", q.sid, len(q.members)))
	}
	delete(f.queues, q.sid)
	f.queueOrder = slices.DeleteFunc(f.queueOrder, func(o *queue) bool { return o == q })
	return http.StatusNoContent, nil
}

func (f *Fake) fetchMember(req *Request) (int, any) {
	q, i := f.memberAt(req)
	if i < 0 {
		return f.notFound(req)
	}
	return http.StatusOK, f.memberJSON(q, q.members[i], i+1)
}

// UpdateMember dequeues the member ({CallSid} is its call SID, or "Front" for the first one,
// as Twilio's Member docs allow; the spec's schema leaves it a free string) and redirects its
// call to Url.
func (f *Fake) updateMember(req *Request) (int, any) {
	q, i := f.memberAt(req)
	if i < 0 {
		return f.notFound(req)
	}
	m := q.members[i]
	answer := f.memberJSON(q, m, i+1)
	q.members = slices.Delete(q.members, i, i+1)
	if c := f.calls[m.callSid]; c != nil {
		c.url, c.method, c.twiml, c.updated = req.Form.Get("Url"), req.Form.Get("Method"), "", f.now()
		if c.method == "" {
			c.method = http.MethodPost
		}
	}
	return http.StatusOK, answer
}

// memberAt returns the queue and the index of the member a Member path names (-1: none).
func (f *Fake) memberAt(req *Request) (*queue, int) {
	q := f.queues[req.PathParams["QueueSid"]]
	if q == nil || len(q.members) == 0 {
		return q, -1
	}
	key := req.PathParams["CallSid"]
	if key == "Front" {
		return q, 0
	}
	return q, slices.IndexFunc(q.members, func(m *member) bool { return m.callSid == key })
}

// JSON answers, with the fields of the spec's response schemas (snake_case, null when unset).

func twilioDate(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC1123Z) // "Fri, 18 Feb 2011 21:07:19 +0000"
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (f *Fake) accountPath() string { return "/2010-04-01/Accounts/" + f.AccountSID }

// participantStatus maps the participant's call status to participant_enum_status.
func participantStatus(callStatus string) string {
	switch callStatus {
	case statusQueued, statusRinging:
		return callStatus
	case statusInProgress:
		return "connected"
	}
	return "complete"
}

func (f *Fake) participantJSON(p *participant) map[string]any {
	status := "connected"
	if c := f.calls[p.callSid]; c != nil {
		status = participantStatus(c.status)
	}
	return map[string]any{
		"account_sid":               f.AccountSID,
		"call_sid":                  p.callSid,
		"label":                     nullable(p.label),
		"conference_sid":            p.conf.sid,
		"date_created":              twilioDate(p.created),
		"date_updated":              twilioDate(p.updated),
		"end_conference_on_exit":    p.endConferenceOnExit,
		"start_conference_on_enter": p.startConferenceOnEnter,
		"muted":                     p.muted,
		"hold":                      p.hold,
		"coaching":                  p.coaching,
		"call_sid_to_coach":         nullable(p.callSidToCoach),
		"status":                    status,
		"queue_time":                nil,
		"uri":                       f.accountPath() + "/Conferences/" + p.conf.sid + "/Participants/" + p.callSid + ".json",
	}
}

func (f *Fake) callJSON(c *call) map[string]any {
	uri := f.accountPath() + "/Calls/" + c.sid
	var duration any
	if !c.start.IsZero() && !c.end.IsZero() {
		duration = strconv.Itoa(int(c.end.Sub(c.start) / time.Second))
	}
	return map[string]any{
		"sid":              c.sid,
		"account_sid":      f.AccountSID,
		"date_created":     twilioDate(c.created),
		"date_updated":     twilioDate(c.updated),
		"parent_call_sid":  nil,
		"to":               c.to,
		"to_formatted":     c.to,
		"from":             c.from,
		"from_formatted":   c.from,
		"phone_number_sid": nil,
		"status":           c.status,
		"start_time":       twilioDate(c.start),
		"end_time":         twilioDate(c.end),
		"duration":         duration,
		"price":            nil,
		"price_unit":       "USD",
		"direction":        nullable(c.direction),
		"answered_by":      nil,
		"api_version":      "2010-04-01",
		"forwarded_from":   nil,
		"group_sid":        nil,
		"caller_name":      nil,
		"queue_time":       "0",
		"trunk_sid":        nil,
		"uri":              uri + ".json",
		"subresource_uris": map[string]string{
			"recordings":    uri + "/Recordings.json",
			"notifications": uri + "/Notifications.json",
		},
	}
}

func (f *Fake) conferenceJSON(conf *conference) map[string]any {
	uri := f.accountPath() + "/Conferences/" + conf.sid
	return map[string]any{
		"sid":                        conf.sid,
		"account_sid":                f.AccountSID,
		"date_created":               twilioDate(conf.created),
		"date_updated":               twilioDate(conf.updated),
		"api_version":                "2010-04-01",
		"friendly_name":              nullable(conf.friendlyName),
		"region":                     "us1",
		"status":                     conf.status,
		"reason_conference_ended":    nullable(conf.reasonEnded),
		"call_sid_ending_conference": nil,
		"uri":                        uri + ".json",
		"subresource_uris": map[string]string{
			"participants": uri + "/Participants.json",
			"recordings":   uri + "/Recordings.json",
		},
	}
}

func (f *Fake) queueJSON(q *queue) map[string]any {
	return map[string]any{
		"sid":               q.sid,
		"account_sid":       f.AccountSID,
		"friendly_name":     q.friendlyName,
		"current_size":      len(q.members),
		"max_size":          q.maxSize,
		"average_wait_time": 0,
		"date_created":      twilioDate(q.created),
		"date_updated":      twilioDate(q.updated),
		"uri":               f.accountPath() + "/Queues/" + q.sid + ".json",
	}
}

func (f *Fake) memberJSON(q *queue, m *member, position int) map[string]any {
	return map[string]any{
		"call_sid":      m.callSid,
		"queue_sid":     q.sid,
		"position":      position,
		"date_enqueued": twilioDate(m.enqueued),
		"wait_time":     int(f.now().Sub(m.enqueued) / time.Second),
		"uri":           f.accountPath() + "/Queues/" + q.sid + "/Members/" + m.callSid + ".json",
	}
}

// Test helpers: set up state as Twilio would have it, and look at it. They panic on misuse
// (a malformed SID, an unknown call), which is a bug in the test.

// CallState is a call as the fake has it.
type CallState struct {
	SID, Status, To, From string
	URL, Method, Twiml    string // the last redirect (UpdateCall or UpdateMember)
}

// ParticipantState is a conference participant as the fake has it.
type ParticipantState struct {
	ConferenceSID, CallSID, Label, Status       string
	Hold, Muted                                 bool
	EndConferenceOnExit, StartConferenceOnEnter bool
	HoldURL, HoldMethod                         string
}

// ConferenceState is a conference as the fake has it.
type ConferenceState struct {
	SID, FriendlyName, Status string
	ReasonEnded               string // reason_conference_ended once completed
	Participants              []ParticipantState
}

// QueueState is a queue as the fake has it.
type QueueState struct {
	SID, FriendlyName string
	MaxSize           int
	Members           []string // call SIDs, front first
}

func mustSID(what string, re *regexp.Regexp, sid string) {
	if !re.MatchString(sid) {
		panic(fmt.Sprintf("twiliofake: %s: %q does not match %s", what, sid, re))
	}
}

func mustCallStatus(what, status string) {
	if !slices.Contains(callStatuses, status) {
		panic(fmt.Sprintf("twiliofake: %s: %q is not a call status (%v)", what, status, callStatuses))
	}
}

// AddCall registers a call (an inbound call, say) with this status, or sets the status of a
// known one.
func (f *Fake) AddCall(sid, status string) {
	mustSID("AddCall", callSID, sid)
	mustCallStatus("AddCall", status)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ensureCall(sid, status)
}

func (f *Fake) ensureCall(sid, status string) *call {
	c := f.calls[sid]
	if c == nil {
		now := f.now()
		c = &call{sid: sid, status: status, direction: "inbound", created: now, updated: now}
		if status == statusInProgress {
			c.start = now
		}
		f.calls[sid] = c
		return c
	}
	f.setCallStatus(c, status)
	return c
}

// SetCallStatus moves a known call, as the callee answering ("in-progress") or hanging up
// ("completed") would. A final status takes the call out of its conference and queue.
func (f *Fake) SetCallStatus(sid, status string) {
	mustCallStatus("SetCallStatus", status)
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls[sid]
	if c == nil {
		panic(fmt.Sprintf("twiliofake: SetCallStatus: no call %s", sid))
	}
	f.setCallStatus(c, status)
}

// AddConference registers an in-progress conference.
func (f *Fake) AddConference(sid, friendlyName string) {
	mustSID("AddConference", conferenceSID, sid)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conferences[sid] == nil {
		f.addConference(sid, friendlyName)
	}
}

// AddParticipant registers a participant (label may be empty) in a conference, registering the
// conference and an in-progress call if they are unknown: a caller who joined by TwiML.
func (f *Fake) AddParticipant(conferenceSid, callSid, label string) {
	mustSID("AddParticipant", conferenceSID, conferenceSid)
	mustSID("AddParticipant", callSID, callSid)
	f.mu.Lock()
	defer f.mu.Unlock()
	conf := f.conferences[conferenceSid]
	if conf == nil {
		conf = f.addConference(conferenceSid, "")
	}
	if conf.status == statusCompleted {
		panic(fmt.Sprintf("twiliofake: AddParticipant: conference %s has completed", conferenceSid))
	}
	if conf.find(callSid) != nil || (label != "" && conf.find(label) != nil) {
		panic(fmt.Sprintf("twiliofake: AddParticipant: %s or label %q already in conference %s", callSid, label, conferenceSid))
	}
	if f.calls[callSid] == nil {
		f.ensureCall(callSid, statusInProgress)
	}
	now := f.now()
	conf.participants = append(conf.participants, &participant{conf: conf, callSid: callSid, label: label, startConferenceOnEnter: true, created: now, updated: now})
}

// AddQueueMember puts a call at the back of a queue, registering the queue and an in-progress
// call if they are unknown: a caller who was enqueued by TwiML.
func (f *Fake) AddQueueMember(queueSid, callSid string) {
	mustSID("AddQueueMember", queueSID, queueSid)
	mustSID("AddQueueMember", callSID, callSid)
	f.mu.Lock()
	defer f.mu.Unlock()
	q := f.queues[queueSid]
	if q == nil {
		q = f.addQueue(queueSid, queueSid)
	}
	if f.calls[callSid] == nil {
		f.ensureCall(callSid, statusInProgress)
	}
	q.members = append(q.members, &member{callSid: callSid, enqueued: f.now()})
}

// Call returns a call's state.
func (f *Fake) Call(sid string) (CallState, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls[sid]
	if c == nil {
		return CallState{}, false
	}
	return CallState{SID: c.sid, Status: c.status, To: c.to, From: c.from, URL: c.url, Method: c.method, Twiml: c.twiml}, true
}

// Participant returns an active participant's state, by call SID or label.
func (f *Fake) Participant(conferenceSid, callSidOrLabel string) (ParticipantState, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	conf := f.conferences[conferenceSid]
	if conf == nil {
		return ParticipantState{}, false
	}
	p := conf.find(callSidOrLabel)
	if p == nil {
		return ParticipantState{}, false
	}
	return f.participantState(p), true
}

func (f *Fake) participantState(p *participant) ParticipantState {
	status := "connected"
	if c := f.calls[p.callSid]; c != nil {
		status = participantStatus(c.status)
	}
	return ParticipantState{
		ConferenceSID: p.conf.sid, CallSID: p.callSid, Label: p.label, Status: status,
		Hold: p.hold, Muted: p.muted, EndConferenceOnExit: p.endConferenceOnExit, StartConferenceOnEnter: p.startConferenceOnEnter,
		HoldURL: p.holdURL, HoldMethod: p.holdMethod,
	}
}

// Conference returns a conference's state, with its active participants.
func (f *Fake) Conference(sid string) (ConferenceState, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	conf := f.conferences[sid]
	if conf == nil {
		return ConferenceState{}, false
	}
	s := ConferenceState{SID: conf.sid, FriendlyName: conf.friendlyName, Status: conf.status, ReasonEnded: conf.reasonEnded}
	for _, p := range conf.participants {
		s.Participants = append(s.Participants, f.participantState(p))
	}
	return s, true
}

// Queue returns a queue's state.
func (f *Fake) Queue(sid string) (QueueState, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := f.queues[sid]
	if q == nil {
		return QueueState{}, false
	}
	s := QueueState{SID: q.sid, FriendlyName: q.friendlyName, MaxSize: q.maxSize}
	for _, m := range q.members {
		s.Members = append(s.Members, m.callSid)
	}
	return s, true
}

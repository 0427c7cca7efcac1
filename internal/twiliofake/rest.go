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

// The REST API's operations on the Model: each answers a valid request (Fake.ServeHTTP has
// authenticated and validated it) as Twilio would, with the fields of the spec's response
// schemas. The Fake's lock is held.

// handlers implement the operations the model keeps state for; the others answer 501.
var handlers = map[string]func(*Model, *Request) (int, any){
	"CreateParticipant": (*Model).createParticipant,
	"UpdateParticipant": (*Model).updateParticipant,
	"FetchParticipant":  (*Model).fetchParticipant,
	"CreateCall":        (*Model).createCall,
	"UpdateCall":        (*Model).updateCall,
	"FetchCall":         (*Model).fetchCall,
	"UpdateConference":  (*Model).updateConference,
	"FetchConference":   (*Model).fetchConference,
	"CreateQueue":       (*Model).createQueue,
	"FetchQueue":        (*Model).fetchQueue,
	"UpdateQueue":       (*Model).updateQueue,
	"ListQueue":         (*Model).listQueue,
	"DeleteQueue":       (*Model).deleteQueue,
	"FetchMember":       (*Model).fetchMember,
	"UpdateMember":      (*Model).updateMember,
	"DeleteRecording":   (*Model).deleteRecording,
}

// serve answers a valid request with the model: its events name req as their Request.
func (m *Model) serve(op *Operation, req *Request) (int, any) {
	h := handlers[op.ID]
	if h == nil {
		return http.StatusNotImplemented, errorBody(http.StatusNotImplemented, CodeNotImplemented,
			fmt.Sprintf("twiliofake does not implement %s (%s %s)", op.ID, op.Method, op.Path))
	}
	c := req.clone()
	m.req = &c
	defer func() { m.req = nil }()
	return h(m, req)
}

func sidPattern(prefix string) *regexp.Regexp {
	return regexp.MustCompile(`^` + prefix + `[0-9a-fA-F]{32}$`)
}

var (
	callSID       = sidPattern("CA")
	conferenceSID = sidPattern("CF")
	queueSID      = sidPattern("QU")
)

func notFound(req *Request) (int, any) {
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

// placing checks what Twilio checks before it places a call (CreateCall, CreateParticipant)
// under Rules: the account's pace (429, 20429) and From (21210). ok is false with the answer.
func (m *Model) placing(form url.Values) (status int, answer any, ok bool) {
	now := m.now()
	if iv := m.rules.CreateInterval; iv > 0 && !m.lastCreate.IsZero() && now.Sub(m.lastCreate) < iv {
		return http.StatusTooManyRequests, errorBody(http.StatusTooManyRequests, CodeTooManyRequests, "Too Many Requests"), false
	}
	if from := form.Get("From"); m.rules.CheckFrom && !m.fromAllowed(from, form.Get("CallToken")) {
		status, answer = badRequest(CodeFromNotVerified, "The source phone number provided, "+from+", is not yet verified for your account. You may only make calls from phone numbers that you've verified or purchased from Twilio.")
		return status, answer, false
	}
	return 0, nil, true
}

// fromAllowed: one of the account's numbers, or an inbound caller's number with its call's
// CallToken (Twilio's way of forwarding a call with the caller's ID).
func (m *Model) fromAllowed(from, token string) bool {
	if m.numbers[from] {
		return true
	}
	for _, c := range m.calls {
		if c.Direction == "inbound" && c.From == from && token != "" && c.Token == token {
			return true
		}
	}
	return false
}

// createParticipant: ConferenceSid is a CF SID of an active conference, or a friendly name
// (Twilio then joins the active conference of that name, or creates one). The participant's
// new call starts queued, and joins the room when it answers.
func (m *Model) createParticipant(req *Request) (int, any) {
	key, form := req.PathParams["ConferenceSid"], req.Form
	var conf *Conference
	if conferenceSID.MatchString(key) {
		if conf = m.conferences[key]; conf == nil || conf.Status == StatusCompleted {
			return notFound(req)
		}
	} else {
		conf = m.ActiveConference(key) // nil: created once the request is accepted
	}
	if status, answer, ok := m.placing(form); !ok {
		return status, answer
	}
	label := form.Get("Label")
	if label != "" && conf != nil && conf.find(label) != nil {
		return badRequest(CodeLabelInUse, "Participant label "+label+" is already in use")
	}
	if conf == nil {
		conf = m.NewConference("", key)
	}
	m.lastCreate = m.now()
	c := m.NewCall(Call{To: form.Get("To"), From: form.Get("From"), Direction: "outbound-api"})
	o := JoinOptions{Label: label, StartConferenceOnEnter: true}
	boolField(form, "StartConferenceOnEnter", &o.StartConferenceOnEnter)
	boolField(form, "EndConferenceOnExit", &o.EndConferenceOnExit)
	p := m.addParticipant(conf, c, o)
	boolField(form, "Muted", &p.Muted)
	boolField(form, "Coaching", &p.Coaching)
	p.CallSidToCoach = form.Get("CallSidToCoach")
	m.emit(Event{Kind: EventCallPlaced, Call: c, Conference: conf, Participant: p})
	return http.StatusCreated, m.participantJSON(p)
}

// createCall places an outbound call: a new call, queued, that runs its Url (or Twiml) once
// answered. Without a simulator nothing rings it: tests drive its webhooks themselves.
func (m *Model) createCall(req *Request) (int, any) {
	form := req.Form
	if status, answer, ok := m.placing(form); !ok {
		return status, answer
	}
	m.lastCreate = m.now()
	c := m.NewCall(Call{To: form.Get("To"), From: form.Get("From"), Direction: "outbound-api",
		URL: form.Get("Url"), Method: methodOr(form.Get("Method")), Twiml: form.Get("Twiml")})
	if c.URL == "" {
		c.Method = ""
	}
	m.emit(Event{Kind: EventCallPlaced, Call: c})
	return http.StatusCreated, m.callJSON(c)
}

// methodOr is a TwiML request's method: GET when asked, else POST.
func methodOr(method string) string {
	if method == http.MethodGet {
		return method
	}
	return http.MethodPost
}

// updateParticipant: {CallSid} is the participant's call SID or label.
func (m *Model) updateParticipant(req *Request) (int, any) {
	p := m.participantAt(req)
	if p == nil {
		return notFound(req)
	}
	form := req.Form
	wasHeld := p.Hold
	boolField(form, "Hold", &p.Hold)
	boolField(form, "Muted", &p.Muted)
	boolField(form, "EndConferenceOnExit", &p.EndConferenceOnExit)
	boolField(form, "Coaching", &p.Coaching)
	if form.Has("CallSidToCoach") {
		p.CallSidToCoach = form.Get("CallSidToCoach")
	}
	if form.Has("HoldUrl") {
		p.HoldURL = form.Get("HoldUrl")
	}
	if form.Has("HoldMethod") {
		p.HoldMethod = form.Get("HoldMethod")
	}
	p.Updated = m.now()
	if p.Hold != wasHeld {
		m.emit(Event{Kind: EventParticipantHold, Call: p.Call, Conference: p.Conference, Participant: p})
	}
	return http.StatusOK, m.participantJSON(p)
}

func (m *Model) fetchParticipant(req *Request) (int, any) {
	p := m.participantAt(req)
	if p == nil {
		return notFound(req)
	}
	return http.StatusOK, m.participantJSON(p)
}

func (m *Model) participantAt(req *Request) *Participant {
	conf := m.conferences[req.PathParams["ConferenceSid"]]
	if conf == nil {
		return nil
	}
	return conf.find(req.PathParams["CallSid"])
}

// updateCall. Status=completed hangs the call up, whatever its state (an outbound call not yet
// answered ends canceled). Status=canceled hangs up a queued or ringing call and, as Twilio's
// Call resource docs put it, "will not affect calls already in progress": 200, and the call
// goes on. Either on a call that has ended, and a redirect (Url or Twiml) of a call not in
// progress, answer 21220. A redirect takes the call out of its conference or queue, as new
// TwiML replaces the <Dial> or <Enqueue>.
func (m *Model) updateCall(req *Request) (int, any) {
	c := m.calls[req.PathParams["Sid"]]
	if c == nil {
		return notFound(req)
	}
	form := req.Form
	switch status := form.Get("Status"); {
	case status != "":
		if c.Ended() {
			return notInProgress()
		}
		switch {
		case status == StatusCompleted && !c.Answered() && c.Direction != "inbound":
			m.SetCallStatus(c, StatusCanceled)
		case status == StatusCompleted || c.Status != StatusInProgress:
			m.SetCallStatus(c, status)
		}
	case form.Has("Url") || form.Has("Twiml"):
		if c.Status != StatusInProgress {
			return notInProgress()
		}
		m.redirect(c, form.Get("Url"), form.Get("Method"), form.Get("Twiml"))
	}
	return http.StatusOK, m.callJSON(c)
}

// redirect sends a call in progress to new TwiML: EventCallRedirected, then it leaves its
// conference and queue.
func (m *Model) redirect(c *Call, rawURL, method, twiml string) {
	c.URL, c.Method, c.Twiml, c.Updated = rawURL, method, twiml, m.now()
	if c.URL != "" {
		c.Method = methodOr(method)
	}
	m.emit(Event{Kind: EventCallRedirected, Call: c})
	m.leaveRooms(c, LeftUpdatedViaAPI)
}

func (m *Model) fetchCall(req *Request) (int, any) {
	c := m.calls[req.PathParams["Sid"]]
	if c == nil {
		return notFound(req)
	}
	return http.StatusOK, m.callJSON(c)
}

// updateConference: Status=completed ends the conference.
func (m *Model) updateConference(req *Request) (int, any) {
	conf := m.conferences[req.PathParams["Sid"]]
	if conf == nil {
		return notFound(req)
	}
	if req.Form.Get("Status") == StatusCompleted {
		m.EndConference(conf, EndedByAPI, "")
	}
	return http.StatusOK, m.conferenceJSON(conf)
}

func (m *Model) fetchConference(req *Request) (int, any) {
	conf := m.conferences[req.PathParams["Sid"]]
	if conf == nil {
		return notFound(req)
	}
	return http.StatusOK, m.conferenceJSON(conf)
}

func (m *Model) createQueue(req *Request) (int, any) {
	q := m.NewQueue("", req.Form.Get("FriendlyName"))
	if req.Form.Has("MaxSize") {
		q.MaxSize, _ = strconv.Atoi(req.Form.Get("MaxSize"))
	}
	return http.StatusCreated, m.queueJSON(q)
}

func (m *Model) fetchQueue(req *Request) (int, any) {
	q := m.queues[req.PathParams["Sid"]]
	if q == nil {
		return notFound(req)
	}
	return http.StatusOK, m.queueJSON(q)
}

func (m *Model) updateQueue(req *Request) (int, any) {
	q := m.queues[req.PathParams["Sid"]]
	if q == nil {
		return notFound(req)
	}
	if req.Form.Has("FriendlyName") {
		q.FriendlyName = req.Form.Get("FriendlyName")
	}
	if req.Form.Has("MaxSize") {
		q.MaxSize, _ = strconv.Atoi(req.Form.Get("MaxSize"))
	}
	q.Updated = m.now()
	return http.StatusOK, m.queueJSON(q)
}

// listQueue pages through the queues in creation order (PageSize, default 50, and Page).
func (m *Model) listQueue(req *Request) (int, any) {
	size, page := 50, 0
	if v := req.Form.Get("PageSize"); v != "" {
		size, _ = strconv.Atoi(v)
	}
	if v := req.Form.Get("Page"); v != "" {
		page, _ = strconv.Atoi(v)
	}
	start := min(page*size, len(m.queueOrder))
	end := min(start+size, len(m.queueOrder))
	queues := make([]any, 0, end-start)
	for _, q := range m.queueOrder[start:end] {
		queues = append(queues, m.queueJSON(q))
	}
	list := m.accountPath() + "/Queues.json"
	pageURI := func(p int) string { return fmt.Sprintf("%s?PageSize=%d&Page=%d", list, size, p) }
	var next, prev any
	if end < len(m.queueOrder) {
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

// deleteQueue removes an empty queue ("Remove an empty queue", says the spec).
func (m *Model) deleteQueue(req *Request) (int, any) {
	q := m.queues[req.PathParams["Sid"]]
	if q == nil {
		return notFound(req)
	}
	if len(q.Members) > 0 {
		return badRequest(CodeQueueNotEmpty, fmt.Sprintf("Queue %s has %d members: only an empty queue can be removed", q.Sid, len(q.Members)))
	}
	delete(m.queues, q.Sid)
	m.queueOrder = slices.DeleteFunc(m.queueOrder, func(o *Queue) bool { return o == q })
	return http.StatusNoContent, nil
}

func (m *Model) fetchMember(req *Request) (int, any) {
	q, i := m.memberAt(req)
	if i < 0 {
		return notFound(req)
	}
	return http.StatusOK, m.memberJSON(q.Members[i], i+1)
}

// updateMember dequeues the member ({CallSid} is its call SID, or "Front" for the first one,
// as Twilio's Member docs allow; the spec's schema leaves it a free string) and redirects its
// call to Url.
func (m *Model) updateMember(req *Request) (int, any) {
	q, i := m.memberAt(req)
	if i < 0 {
		return notFound(req)
	}
	mb := q.Members[i]
	answer := m.memberJSON(mb, i+1)
	m.Dequeue(mb)
	m.redirect(mb.Call, req.Form.Get("Url"), req.Form.Get("Method"), "")
	return http.StatusOK, answer
}

// memberAt returns the queue and the index of the member a Member path names (-1: none).
func (m *Model) memberAt(req *Request) (*Queue, int) {
	q := m.queues[req.PathParams["QueueSid"]]
	if q == nil || len(q.Members) == 0 {
		return q, -1
	}
	key := req.PathParams["CallSid"]
	if key == "Front" {
		return q, 0
	}
	return q, slices.IndexFunc(q.Members, func(mb *Member) bool { return mb.Call.Sid == key })
}

// deleteRecording: "Delete a recording from your account" (the spec), 204 with no body, and
// Twilio's 20404 for one that does not exist (or no longer does).
func (m *Model) deleteRecording(req *Request) (int, any) {
	sid := req.PathParams["Sid"]
	if m.recordings[sid] == nil {
		return notFound(req)
	}
	delete(m.recordings, sid)
	return http.StatusNoContent, nil
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

func (m *Model) accountPath() string { return "/2010-04-01/Accounts/" + m.accountSID }

// participantStatus maps the participant's call status to participant_enum_status.
func participantStatus(callStatus string) string {
	switch callStatus {
	case StatusQueued, StatusRinging:
		return callStatus
	case StatusInProgress:
		return "connected"
	}
	return "complete"
}

func (m *Model) participantJSON(p *Participant) map[string]any {
	return map[string]any{
		"account_sid":               m.accountSID,
		"call_sid":                  p.Call.Sid,
		"label":                     nullable(p.Label),
		"conference_sid":            p.Conference.Sid,
		"date_created":              twilioDate(p.Created),
		"date_updated":              twilioDate(p.Updated),
		"end_conference_on_exit":    p.EndConferenceOnExit,
		"start_conference_on_enter": p.StartConferenceOnEnter,
		"muted":                     p.Muted,
		"hold":                      p.Hold,
		"coaching":                  p.Coaching,
		"call_sid_to_coach":         nullable(p.CallSidToCoach),
		"status":                    participantStatus(p.Call.Status),
		"queue_time":                nil,
		"uri":                       m.accountPath() + "/Conferences/" + p.Conference.Sid + "/Participants/" + p.Call.Sid + ".json",
	}
}

func (m *Model) callJSON(c *Call) map[string]any {
	uri := m.accountPath() + "/Calls/" + c.Sid
	var duration any
	if !c.Start.IsZero() && !c.End.IsZero() {
		duration = strconv.Itoa(int(c.End.Sub(c.Start) / time.Second))
	}
	return map[string]any{
		"sid":              c.Sid,
		"account_sid":      m.accountSID,
		"date_created":     twilioDate(c.Created),
		"date_updated":     twilioDate(c.Updated),
		"parent_call_sid":  nullable(c.ParentSid),
		"to":               c.To,
		"to_formatted":     c.To,
		"from":             c.From,
		"from_formatted":   c.From,
		"phone_number_sid": nil,
		"status":           c.Status,
		"start_time":       twilioDate(c.Start),
		"end_time":         twilioDate(c.End),
		"duration":         duration,
		"price":            nil,
		"price_unit":       "USD",
		"direction":        nullable(c.Direction),
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

func (m *Model) conferenceJSON(conf *Conference) map[string]any {
	uri := m.accountPath() + "/Conferences/" + conf.Sid
	return map[string]any{
		"sid":                        conf.Sid,
		"account_sid":                m.accountSID,
		"date_created":               twilioDate(conf.Created),
		"date_updated":               twilioDate(conf.Updated),
		"api_version":                "2010-04-01",
		"friendly_name":              nullable(conf.FriendlyName),
		"region":                     "us1",
		"status":                     conf.Status,
		"reason_conference_ended":    nullable(conf.ReasonEnded),
		"call_sid_ending_conference": nullable(conf.EndingCallSid),
		"uri":                        uri + ".json",
		"subresource_uris": map[string]string{
			"participants": uri + "/Participants.json",
			"recordings":   uri + "/Recordings.json",
		},
	}
}

func (m *Model) queueJSON(q *Queue) map[string]any {
	return map[string]any{
		"sid":               q.Sid,
		"account_sid":       m.accountSID,
		"friendly_name":     q.FriendlyName,
		"current_size":      len(q.Members),
		"max_size":          q.MaxSize,
		"average_wait_time": 0,
		"date_created":      twilioDate(q.Created),
		"date_updated":      twilioDate(q.Updated),
		"uri":               m.accountPath() + "/Queues/" + q.Sid + ".json",
	}
}

func (m *Model) memberJSON(mb *Member, position int) map[string]any {
	return map[string]any{
		"call_sid":      mb.Call.Sid,
		"queue_sid":     mb.Queue.Sid,
		"position":      position,
		"date_enqueued": twilioDate(mb.Enqueued),
		"wait_time":     int(m.now().Sub(mb.Enqueued) / time.Second),
		"uri":           m.accountPath() + "/Queues/" + mb.Queue.Sid + "/Members/" + mb.Call.Sid + ".json",
	}
}

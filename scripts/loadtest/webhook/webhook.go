// Package webhook builds the webhooks Twilio sends callrelay during one forwarded call, signed
// as Twilio signs them, for the load generators in scripts/loadtest (gen: request files for
// wrk; soak: a rate-controlled mixed load).
//
// A call to the masked number forwards to one phone (the load test's routing) and goes:
//
//	voice          POST /twilio/voice                 the incoming call
//	call-status    POST /twilio/call-status?target=0  the forwarded leg's progress: initiated,
//	                                                  ringing, then answered (in-progress) and
//	                                                  completed, or no-answer, or busy
//	dial-outcome   POST /twilio/dial-outcome?attempt=0 the caller's <Dial> action
//
// The URLs are those callrelay writes in its TwiML (twiml.Builder: the Dial action carries the
// attempt, each noun's statusCallback the target index), and the signature covers them with
// their query. The parameters are those internal/twiliosim sends: the call's own (AccountSid,
// ApiVersion, CallSid, CallStatus, Direction, From, To, Caller, Called, ParentCallSid for a
// leg), the status callback's (CallbackSource, SequenceNumber, an RFC 2822 Timestamp,
// CallDuration and Duration at the end) and the Dial action's (DialCallStatus, DialCallSid,
// DialCallDuration when the callee hung up).
package webhook

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/callrelay/callrelay/internal/signature"
	"github.com/callrelay/callrelay/internal/twiml"
)

// AccountSID is the account the webhooks come from (callrelay does not check it).
const AccountSID = "AC0123456789abcdef0123456789abcdef"

// Routes, with the query callrelay's TwiML puts on them for the first target and attempt.
const (
	RouteVoice       = twiml.PathVoice
	RouteCallStatus  = twiml.PathCallStatus
	RouteDialOutcome = twiml.PathDialOutcome

	CallStatusQuery  = twiml.QueryTarget + "=0"
	DialOutcomeQuery = twiml.QueryAttempt + "=0"
)

// PathAndQuery is where Twilio posts route's webhooks for the load test's one-target routing.
func PathAndQuery(route string) (string, error) {
	switch route {
	case RouteVoice:
		return route, nil
	case RouteCallStatus:
		return route + "?" + CallStatusQuery, nil
	case RouteDialOutcome:
		return route + "?" + DialOutcomeQuery, nil
	}
	return "", fmt.Errorf("webhook: unknown route %q (want %s, %s or %s)", route, RouteVoice, RouteCallStatus, RouteDialOutcome)
}

// Outcome is how the forwarded leg of a call ends, and so what the Dial action reports.
type Outcome string

const (
	Answered Outcome = "completed" // answered, then hung up: DialCallStatus=completed
	NoAnswer Outcome = "no-answer"
	Busy     Outcome = "busy"
)

// OutcomeOf picks a call's outcome from its CallSid, the same for every request about the
// call: 40% answered, 45% no-answer, 15% busy. One answered call in four ends because the
// caller hung up (the Dial action's CallStatus is then completed).
func OutcomeOf(callSid string) (o Outcome, callerHungUp bool) {
	h := sha256.Sum256([]byte(callSid))
	switch b := h[0] % 20; {
	case b < 8:
		return Answered, h[1]%4 == 0
	case b < 17:
		return NoAnswer, false
	default:
		return Busy, false
	}
}

// Call is one call to the masked number.
type Call struct {
	Sid    string // the caller's CallSid
	Number string // the masked number (To)
	From   string // the caller
	Target string // the phone the call is forwarded to
}

// LegSid is the CallSid of the call's forwarded leg: derived from the caller's, so that
// requests written apart agree on it.
func (c Call) LegSid() string {
	h := sha256.Sum256([]byte("leg:" + c.Sid))
	return "CA" + hex.EncodeToString(h[:16])
}

func (c Call) base(status string) url.Values {
	return url.Values{
		"AccountSid": {AccountSID}, "ApiVersion": {"2010-04-01"}, "CallSid": {c.Sid}, "CallStatus": {status},
		"Direction": {"inbound"}, "From": {c.From}, "To": {c.Number}, "Caller": {c.From}, "Called": {c.Number},
	}
}

// Voice is the incoming call webhook, with the caller's CallToken.
func (c Call) Voice() url.Values {
	v := c.base("ringing")
	v.Set("CallToken", `{"parentCallInfoToken":"eyJhbGciOiJFUzI1NiJ9.`+c.Sid+`","identityHeaderTokens":[]}`)
	return v
}

// LegStep is one status callback of the forwarded leg.
type LegStep struct {
	Status   string        // CallStatus: initiated, ringing, in-progress, completed, no-answer, busy
	After    time.Duration // since the call came in
	Duration int           // CallDuration of the final callback (seconds answered)
}

// LegSteps are the status callbacks of the call's leg with outcome o, in Twilio's order (the
// answered event carries CallStatus=in-progress).
func LegSteps(o Outcome) []LegStep {
	switch o {
	case Answered:
		return []LegStep{{"initiated", 100 * time.Millisecond, 0}, {"ringing", 300 * time.Millisecond, 0},
			{"in-progress", 4 * time.Second, 0}, {"completed", 9 * time.Second, 5}}
	case Busy:
		return []LegStep{{"initiated", 100 * time.Millisecond, 0}, {"busy", 600 * time.Millisecond, 0}}
	}
	return []LegStep{{"initiated", 100 * time.Millisecond, 0}, {"ringing", 300 * time.Millisecond, 0},
		{"no-answer", 6 * time.Second, 0}}
}

// DialAfter is when the caller's Dial action comes for outcome o: just after the leg's final
// status callback.
func DialAfter(o Outcome) time.Duration {
	s := LegSteps(o)
	return s[len(s)-1].After + 50*time.Millisecond
}

// LegStatus is the seq-th status callback of the call's leg, sent at.
func (c Call) LegStatus(seq int, s LegStep, at time.Time) url.Values {
	v := url.Values{
		"AccountSid": {AccountSID}, "ApiVersion": {"2010-04-01"}, "CallSid": {c.LegSid()}, "ParentCallSid": {c.Sid},
		"CallStatus": {s.Status}, "Direction": {"outbound-dial"}, "From": {c.From}, "To": {c.Target},
		"Caller": {c.From}, "Called": {c.Target}, "CallbackSource": {"call-progress-events"},
		"SequenceNumber": {strconv.Itoa(seq)}, "Timestamp": {at.UTC().Format(time.RFC1123Z)},
	}
	switch s.Status {
	case "completed", "no-answer", "busy", "failed", "canceled":
		v.Set("CallDuration", strconv.Itoa(s.Duration))
		v.Set("Duration", strconv.Itoa((s.Duration+59)/60))
	}
	return v
}

// CallerStatus is the status callback of the caller's own call (the number's status callback,
// posted to /twilio/call-status without a query) when it ends: completed, durationSeconds
// after it came in.
func (c Call) CallerStatus(seq int, at time.Time, durationSeconds int) url.Values {
	v := c.base("completed")
	v.Set("CallbackSource", "call-progress-events")
	v.Set("SequenceNumber", strconv.Itoa(seq))
	v.Set("Timestamp", at.UTC().Format(time.RFC1123Z))
	v.Set("CallDuration", strconv.Itoa(durationSeconds))
	v.Set("Duration", strconv.Itoa((durationSeconds+59)/60))
	return v
}

// DialOutcome is the caller's Dial action for outcome o.
func (c Call) DialOutcome(o Outcome, callerHungUp bool) url.Values {
	status := "in-progress"
	if callerHungUp {
		status = "completed"
	}
	v := c.base(status)
	v.Set("DialCallStatus", string(o))
	v.Set("DialCallSid", c.LegSid())
	if o == Answered {
		steps := LegSteps(o)
		v.Set("DialCallDuration", strconv.Itoa(steps[len(steps)-1].Duration))
	}
	return v
}

// Signed is a webhook ready to send: its signature and form body.
type Signed struct {
	Signature, Body string
}

// Sign signs form for the public URL base (CALLRELAY_PUBLIC_URL, no trailing slash) and
// pathAndQuery, as Twilio does.
func Sign(token, base, pathAndQuery string, form url.Values) Signed {
	return Signed{Signature: signature.Sign(token, base+pathAndQuery, form), Body: form.Encode()}
}

// RequestsPerCall is the mean number of webhooks of a call, over the outcomes' mix of
// OutcomeOf: the voice webhook, the leg's status callbacks and the Dial action.
func RequestsPerCall() float64 {
	mix := map[Outcome]float64{Answered: 8.0 / 20, NoAnswer: 9.0 / 20, Busy: 3.0 / 20}
	var n float64
	for o, share := range mix {
		n += share * float64(2+len(LegSteps(o)))
	}
	return n
}

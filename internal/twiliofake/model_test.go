package twiliofake

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	openapi "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/callrelay/callrelay/internal/clocktest"
)

// recorder is an OnEvent that writes each event down as "kind call-or-label [detail]".
type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) on(e Event) {
	s := e.Kind.String()
	switch {
	case e.Participant != nil && e.Participant.Label != "":
		s += " " + e.Participant.Label
	case e.Call != nil:
		s += " " + e.Call.Sid[len(e.Call.Sid)-2:]
	}
	switch e.Kind {
	case EventCallStatus:
		s += " " + e.Old + ">" + e.Call.Status
	case EventParticipantLeft, EventConferenceEnded:
		s += " " + e.Reason
	case EventCallPlaced, EventCallRedirected:
		s += " by " + e.Request.Operation
	}
	r.mu.Lock()
	r.got = append(r.got, s)
	r.mu.Unlock()
}

// take returns the events written down since the last take.
func (r *recorder) take() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := strings.Join(r.got, "; ")
	r.got = nil
	return s
}

// startWithEvents is start with an OnEvent recorder.
func startWithEvents(t *testing.T) (*Fake, *openapi.ApiService, *recorder) {
	t.Helper()
	rec := &recorder{}
	var mu sync.Mutex
	n := 0
	f := Start(t, Options{OnEvent: rec.on, NewSid: func(prefix string) string {
		mu.Lock()
		defer mu.Unlock()
		n++
		return fmt.Sprintf("%s%032x", prefix, n)
	}})
	return f, twilioAPI(t, f, f.AccountSID, f.AuthToken), rec
}

// TestEvents: every change to the model is told to OnEvent once made, whoever made it (a REST
// request, a test helper standing for the simulator), in order: a call's status before its
// leaving the conference, a join before the start it causes, a redirect before the leaving.
func TestEvents(t *testing.T) {
	f, api, rec := startWithEvents(t)
	f.AddParticipant(confA, callA, "caller")
	if got, want := rec.take(), "participant-joined caller"; got != want {
		t.Errorf("AddParticipant: %q, want %q", got, want)
	}
	p, err := api.CreateParticipant(confA, callrelayParticipant("callee"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rec.take(), "call-placed callee by CreateParticipant"; got != want {
		t.Errorf("CreateParticipant: %q, want %q", got, want)
	}
	f.SetCallStatus(*p.CallSid, "ringing")
	f.SetCallStatus(*p.CallSid, "in-progress")
	if got, want := rec.take(), "call-status 01 queued>ringing; call-status 01 ringing>in-progress; participant-joined callee; conference-started callee"; got != want {
		t.Errorf("the callee answers: %q, want %q", got, want)
	}
	if _, err := api.UpdateParticipant(confA, "caller", (&openapi.UpdateParticipantParams{}).SetHold(true)); err != nil {
		t.Fatal(err)
	}
	if _, err := api.UpdateParticipant(confA, "caller", (&openapi.UpdateParticipantParams{}).SetHold(true)); err != nil {
		t.Fatal(err)
	}
	if got, want := rec.take(), "participant-hold caller"; got != want {
		t.Errorf("hold twice: %q, want %q (once: the second changes nothing)", got, want)
	}
	// The caller is sent elsewhere: redirected, then out of the room, which the callee's
	// EndConferenceOnExit does not matter to; the conference goes on with the callee.
	if _, err := api.UpdateCall(callA, (&openapi.UpdateCallParams{}).SetUrl("https://relay.example.com/next")); err != nil {
		t.Fatal(err)
	}
	if got, want := rec.take(), "call-redirected ef by UpdateCall; participant-left caller participant_updated_via_api"; got != want {
		t.Errorf("redirect: %q, want %q", got, want)
	}
	// The callee hangs up: it had EndConferenceOnExit.
	if _, err := api.UpdateCall(*p.CallSid, (&openapi.UpdateCallParams{}).SetStatus("completed")); err != nil {
		t.Fatal(err)
	}
	want := "call-status 01 in-progress>completed; participant-left callee participant_hung_up; conference-ended participant-with-end-conference-on-exit-left"
	if got := rec.take(); got != want {
		t.Errorf("the callee hangs up: %q, want %q", got, want)
	}
	// Refused and injected answers change nothing, so tell nothing.
	_, err = api.UpdateCall(*p.CallSid, (&openapi.UpdateCallParams{}).SetStatus("completed"))
	if te := restError(t, err); te.Code != 21220 {
		t.Errorf("UpdateCall of an ended call: %d, want 21220", te.Code)
	}
	f.Fail("CreateParticipant", Failure{Code: 20429, Status: 429})
	_, err = api.CreateParticipant(confA, callrelayParticipant("x"))
	if te := restError(t, err); te.Status != 429 {
		t.Errorf("injected failure: %d, want 429", te.Status)
	}
	if got := rec.take(); got != "" {
		t.Errorf("refused requests: %q, want no events", got)
	}
}

// TestConferenceEndsWhenLastInRoomLeaves: a participant still being dialed is not in the room:
// when the last one in the room leaves, the conference ends, the dialed one is dropped, and
// answering later joins nothing.
func TestConferenceEndsWhenLastInRoomLeaves(t *testing.T) {
	f, api, rec := startWithEvents(t)
	f.AddParticipant(confA, callA, "caller")
	p, err := api.CreateParticipant(confA, callrelayParticipant("callee"))
	if err != nil {
		t.Fatal(err)
	}
	f.SetCallStatus(*p.CallSid, "ringing")
	rec.take()
	f.SetCallStatus(callA, "completed")
	want := "call-status ef in-progress>completed; participant-left caller participant_hung_up; conference-ended last-participant-left"
	if got := rec.take(); got != want {
		t.Errorf("the caller hangs up: %q, want %q", got, want)
	}
	if c, _ := f.Conference(confA); c.Status != "completed" || c.ReasonEnded != "last-participant-left" || len(c.Participants) != 0 {
		t.Errorf("conference %+v, want completed by last-participant-left, nobody left", c)
	}
	f.SetCallStatus(*p.CallSid, "in-progress")
	if got, want := rec.take(), "call-status 01 ringing>in-progress"; got != want {
		t.Errorf("the callee answers late: %q, want %q (no join)", got, want)
	}
	if _, ok := f.Participant(confA, "callee"); ok {
		t.Error("the late callee is a participant")
	}
}

// TestUpdateMemberRedirects: dequeuing a member (UpdateMember) redirects its call, the event
// first, then the member is gone.
func TestUpdateMemberRedirects(t *testing.T) {
	f, api, rec := startWithEvents(t)
	f.AddQueueMember(queA, callA)
	if _, err := api.UpdateMember(queA, "Front", (&openapi.UpdateMemberParams{}).SetUrl("https://relay.example.com/agent")); err != nil {
		t.Fatal(err)
	}
	if got, want := rec.take(), "call-redirected ef by UpdateMember"; got != want {
		t.Errorf("UpdateMember: %q, want %q", got, want)
	}
	if q, _ := f.Queue(queA); len(q.Members) != 0 {
		t.Errorf("queue %+v, want empty", q)
	}
}

// TestRules: with Rules, the model paces placed calls (CreateCall and CreateParticipant share
// the account's pace: 429, 20429) and checks their From (400, 21210): one of the account's
// numbers, or an inbound caller's number with that call's CallToken. Refused requests do not
// take a slot.
func TestRules(t *testing.T) {
	var mu sync.Mutex
	now := clocktest.Start()
	f := Start(t, Options{Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now },
		Rules: Rules{CreateInterval: time.Second, CheckFrom: true}})
	api := twilioAPI(t, f, f.AccountSID, f.AuthToken)
	advance := func() { mu.Lock(); now = now.Add(time.Second); mu.Unlock() }
	f.mu.Lock()
	f.model.SetNumbers("+15005550006")
	f.model.NewCall(Call{Sid: callA, From: "+15551234567", To: "+15005550006", Direction: "inbound", Status: StatusInProgress, Token: "TKsecret"})
	f.mu.Unlock()
	f.AddParticipant(confA, callA, "caller")

	place := func(op, from, token string) error {
		switch op {
		case "CreateCall":
			params := (&openapi.CreateCallParams{}).SetTo("+15005550001").SetFrom(from).SetUrl("https://relay.example.com/screen")
			if token != "" {
				params.SetCallToken(token)
			}
			_, err := api.CreateCall(params)
			return err
		default:
			params := callrelayParticipant("").SetFrom(from)
			if token != "" {
				params.SetCallToken(token)
			}
			_, err := api.CreateParticipant(confA, params)
			return err
		}
	}
	for _, op := range []string{"CreateCall", "CreateParticipant"} {
		for _, tc := range []struct {
			name, from, token string
			want              int // Twilio error code; 0: placed
		}{
			{"a number nobody has", "+15005550009", "", CodeFromNotVerified},
			{"the caller's without a token", "+15551234567", "", CodeFromNotVerified},
			{"the caller's with another call's token", "+15551234567", "TKother", CodeFromNotVerified},
			{"the account's number", "+15005550006", "", 0},
			{"right after", "+15005550006", "", CodeTooManyRequests},
			{"the caller's with its token, a second later", "+15551234567", "TKsecret", 0},
		} {
			if strings.HasSuffix(tc.name, "a second later") {
				advance()
			}
			err := place(op, tc.from, tc.token)
			switch {
			case tc.want == 0 && err != nil:
				t.Errorf("%s, %s: %v, want it placed", op, tc.name, err)
			case tc.want != 0:
				if te := restError(t, err); te.Code != tc.want || (tc.want == CodeTooManyRequests) != (te.Status == http.StatusTooManyRequests) {
					t.Errorf("%s, %s: %d %d, want code %d", op, tc.name, te.Status, te.Code, tc.want)
				}
			}
		}
		advance()
	}
	if n := len(f.Violations()); n != 0 {
		t.Errorf("%d violations: a refusal by the rules is Twilio's answer, not a malformed request", n)
	}
}

// TestOnAnswer: the OnAnswer hooks hear of every request once answered, refused ones too,
// with the status and Twilio's error code and message.
func TestOnAnswer(t *testing.T) {
	f, api := start(t)
	f.ExpectViolations()
	var mu sync.Mutex
	var got []string
	f.OnAnswer(func(r Request) {
		mu.Lock()
		got = append(got, fmt.Sprintf("%s %d %d %s", r.Operation, r.Status, r.Code, r.Message))
		mu.Unlock()
	})
	f.AddParticipant(confA, callA, "caller")
	_, _ = api.UpdateParticipant(confA, "caller", (&openapi.UpdateParticipantParams{}).SetHold(true))
	_, _ = api.UpdateParticipant(confA, "nobody", (&openapi.UpdateParticipantParams{}).SetHold(true))
	_, _ = api.UpdateParticipant(confA, "caller", (&openapi.UpdateParticipantParams{}).SetHold(true).SetHoldMethod("PUT"))
	mu.Lock()
	defer mu.Unlock()
	want := []string{
		"UpdateParticipant 200 0 ",
		"UpdateParticipant 404 20404 The requested resource /2010-04-01/Accounts/" + f.AccountSID + "/Conferences/" + confA + "/Participants/nobody.json was not found",
		`UpdateParticipant 400 20001 HoldMethod: must be one of "GET", "POST"`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("OnAnswer heard\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

package twiliosim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/callrelay/callrelay/internal/twiliofake"
)

// Run plays a scenario: it sets the number's routing (when the scenario has one), places the
// inbound call, makes the caller, the targets and ops do what the scenario says, waits until
// every call has ended and every callback has been delivered, and checks the expectations,
// waiting up to expectWait (real time) for those that callrelay reaches later (the email).
// One scenario runs at a time on a Sim.
func (s *Sim) Run(ctx context.Context, sc *Scenario, expectWait time.Duration) (*Result, error) {
	s.mu.Lock()
	if s.run != nil {
		s.mu.Unlock()
		return nil, errors.New("twiliosim: a scenario is already running")
	}
	r := &run{sc: sc, heard: map[string][]string{}, start: s.clock.Elapsed()}
	s.run = r
	s.model.SetNumbers(sc.Number) // the account's number: callrelay may place calls from it
	s.mu.Unlock()
	firstRequest := len(s.fake.Requests())
	firstViolation := len(s.fake.Violations())
	defer func() {
		s.mu.Lock()
		s.run = nil
		s.model.SetNumbers()
		s.mu.Unlock()
	}()

	if sc.Routing != nil {
		if err := s.putRouting(ctx, sc); err != nil {
			s.fail("routing: %v", err)
			return r.result(sc.Name, ""), nil
		}
	}

	s.mu.Lock()
	caller := s.newCallLocked(s.model.NewCall(twiliofake.Call{From: sc.From, To: sc.Number, Direction: inbound,
		Status: twiliofake.StatusRinging, Token: s.sidLocked("TK")}), "caller")
	caller.executing = true
	if sc.StatusCallback == nil || *sc.StatusCallback {
		caller.cb = newStatusCallback(s.cfg.BaseURL+"/twilio/call-status", http.MethodPost, "completed")
	}
	r.caller = caller
	s.logLocked("caller", "calls %s from %s (%s)", sc.Number, sc.From, caller.sid)
	s.goTracked(func() {
		caller.execute(fetch{url: s.cfg.BaseURL + sc.VoicePath, method: http.MethodPost, what: "voice"})
	})
	s.mu.Unlock()

	if sc.Caller.HangupAt > 0 {
		s.later(seconds(sc.Caller.HangupAt), func() { caller.hangup("hangs up") })
	}
	for _, op := range sc.Ops {
		s.later(seconds(op.At), func() { s.op(ctx, caller.sid, op) })
	}

	// Await the end: every call over, every callback delivered.
	limit, cancel := context.WithTimeout(ctx, s.clock.Real(seconds(sc.MaxSeconds)))
	err := s.work.wait(limit)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		s.fail("still going after %.0fs: %s", sc.MaxSeconds, s.liveCalls())
		s.hangupAll()
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_ = s.work.wait(wctx)
		cancel()
	}
	s.log("check", "the call is over; checking expectations")

	for _, v := range s.fake.Violations()[firstViolation:] {
		s.fail("callrelay sent a request Twilio would refuse: %v", v)
	}
	s.check(ctx, r, caller.sid, s.fake.Requests()[firstRequest:], expectWait)
	res := r.result(sc.Name, caller.sid)
	if !res.OK() && s.cfg.OpsToken != "" {
		// What callrelay made of it, for whoever reads the failure.
		if status, body, err := s.ops(ctx, http.MethodGet, "/api/calls/"+caller.sid, nil); err == nil && status == http.StatusOK {
			res.CallJSON = string(body)
		}
	}
	return res, nil
}

func seconds(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

// liveCalls describes the calls still going.
func (s *Sim) liveCalls() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var live []string
	for _, c := range s.calls {
		if c.aliveLocked() {
			live = append(live, c.party+" ("+c.rec.Status+")")
		}
	}
	sort.Strings(live)
	if len(live) == 0 {
		return "callbacks still being delivered"
	}
	return "calls still up: " + strings.Join(live, ", ")
}

func (s *Sim) hangupAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.calls {
		c.endLocked("completed", "hung up by the simulator (time limit)", nil)
	}
}

// ops sends a request to callrelay's ops API.
func (s *Sim) ops(ctx context.Context, method, p string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.cfg.BaseURL+p, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.cfg.OpsToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, p, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, data, err
}

func (s *Sim) putRouting(ctx context.Context, sc *Scenario) error {
	status, body, err := s.ops(ctx, http.MethodPut, "/api/numbers/"+url.PathEscape(sc.Number), sc.Routing)
	if err != nil {
		return err
	}
	if status != http.StatusOK && status != http.StatusCreated {
		return fmt.Errorf("PUT /api/numbers/%s answered %d: %s", sc.Number, status, bytes.TrimSpace(body))
	}
	s.log("ops", "PUT /api/numbers/%s → %d", sc.Number, status)
	return nil
}

// op makes an ops request of the scenario.
func (s *Sim) op(ctx context.Context, callSid string, op OpAction) {
	verb, party := "hold", op.Hold
	if op.Unhold != "" {
		verb, party = "unhold", op.Unhold
	}
	p := "/api/calls/" + callSid + "/" + verb
	status, body, err := s.ops(ctx, http.MethodPost, p, map[string]string{"party": party})
	if err != nil {
		s.fail("ops %s %s: %v", verb, party, err)
		return
	}
	want := op.Status
	if want == 0 {
		want = http.StatusOK
	}
	s.log("ops", "POST %s {\"party\":%q} → %d", p, party, status)
	if status != want {
		s.fail("ops %s %s answered %d, want %d: %s", verb, party, status, want, bytes.TrimSpace(body))
	}
}

// apiCall is the part of GET /api/calls/{sid} the expectations read.
type apiCall struct {
	Status string          `json:"status"`
	Hold   map[string]bool `json:"hold"`
	Legs   []struct {
		Target string `json:"target"`
		Status string `json:"status"`
	} `json:"legs"`
	Events []apiEvent `json:"events"`
}

type apiVoicemail struct {
	CallSid          string  `json:"call_sid"`
	TranscriptStatus string  `json:"transcript_status"`
	Transcript       *string `json:"transcript"`
	Notification     struct {
		Status string `json:"status"`
	} `json:"notification"`
}

// check compares the outcome with the scenario's expectations, polling callrelay's ops API
// until they hold or expectWait passes.
func (s *Sim) check(ctx context.Context, r *run, callSid string, reqs []twiliofake.Request, expectWait time.Duration) {
	ex := r.sc.Expect
	r.mu.Lock()
	heard := map[string][]string{}
	for k, v := range r.heard {
		heard[k] = slices.Clone(v)
	}
	r.mu.Unlock()
	for party, want := range ex.Heard {
		if msg := inOrder(heard[party], want); msg != "" {
			s.fail("%s heard %s", party, msg)
		}
	}
	for party, never := range ex.NotHeard {
		for _, n := range never {
			for _, h := range heard[party] {
				if strings.Contains(h, n) {
					s.fail("%s heard %q (%q), which it must not", party, n, h)
				}
			}
		}
	}
	if len(ex.TwilioRequests) > 0 {
		got := map[string]int{}
		for _, q := range reqs {
			got[q.Operation]++
		}
		for op, n := range ex.TwilioRequests {
			if got[op] != n {
				s.fail("callrelay made %d %s requests, want %d", got[op], op, n)
			}
		}
	}
	if ex.CallStatus == "" && ex.Hold == nil && ex.Legs == nil && ex.Screens == nil && ex.Voicemail == nil && ex.MissedCall == nil {
		return
	}
	deadline := time.Now().Add(expectWait)
	for {
		problems, err := s.apiProblems(ctx, callSid, r.sc)
		if err == nil && len(problems) == 0 {
			s.log("check", "callrelay's state is as expected")
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if err != nil {
				problems = append(problems, err.Error())
			}
			for _, p := range problems {
				s.fail("%s", p)
			}
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond): // polling callrelay's API: it offers no way to await
		}
	}
}

// apiProblems reads the call (and its voicemail) from the ops API and lists what differs
// from the expectations.
func (s *Sim) apiProblems(ctx context.Context, callSid string, sc *Scenario) ([]string, error) {
	ex := sc.Expect
	var problems []string
	if ex.CallStatus != "" || ex.Hold != nil || ex.Legs != nil || ex.Screens != nil || ex.MissedCall != nil {
		status, body, err := s.ops(ctx, http.MethodGet, "/api/calls/"+callSid, nil)
		if err != nil {
			return nil, err
		}
		if status != http.StatusOK {
			return nil, fmt.Errorf("GET /api/calls/%s answered %d: %s", callSid, status, bytes.TrimSpace(body))
		}
		var c apiCall
		if err := json.Unmarshal(body, &c); err != nil {
			return nil, fmt.Errorf("GET /api/calls/%s: %w", callSid, err)
		}
		if ex.CallStatus != "" && c.Status != ex.CallStatus {
			problems = append(problems, fmt.Sprintf("call status %q, want %q", c.Status, ex.CallStatus))
		}
		for party, want := range ex.Hold {
			if c.Hold[party] != want {
				problems = append(problems, fmt.Sprintf("hold.%s = %v, want %v", party, c.Hold[party], want))
			}
		}
		for target, want := range ex.Legs {
			found := false
			for _, l := range c.Legs {
				if TargetKey(l.Target) == TargetKey(target) {
					found = true
					if l.Status != want {
						problems = append(problems, fmt.Sprintf("leg %s status %q, want %q", target, l.Status, want))
					}
				}
			}
			if !found {
				problems = append(problems, fmt.Sprintf("no leg to %s (want %s)", target, want))
			}
		}
		// A leg's screen outcome is its final "screen" entry, else offered. Not the last one:
		// entries are ordered by time, and a status callback's Timestamp has whole seconds, so
		// "ended" can sort before the "offered" of the same second.
		screens := map[string]string{}
		for _, e := range c.Events {
			if target, _ := e.Detail["target"].(string); e.Type == "screen" {
				if key := TargetKey(target); screens[key] == "" || screens[key] == "offered" {
					screens[key] = e.Outcome
				}
			}
		}
		for target, want := range ex.Screens {
			if got := screens[TargetKey(target)]; got != want {
				problems = append(problems, fmt.Sprintf("screen of %s %q, want %q (callrelay's timeline)", target, got, want))
			}
		}
		if ex.MissedCall != nil {
			problems = append(problems, missedProblems(ex.MissedCall, c.Events)...)
		}
	}
	if v := ex.Voicemail; v != nil {
		status, body, err := s.ops(ctx, http.MethodGet, "/api/voicemails?number="+url.QueryEscape(sc.Number)+"&limit=100", nil)
		if err != nil {
			return nil, err
		}
		if status != http.StatusOK {
			return nil, fmt.Errorf("GET /api/voicemails answered %d: %s", status, bytes.TrimSpace(body))
		}
		var list struct {
			Voicemails []apiVoicemail `json:"voicemails"`
		}
		if err := json.Unmarshal(body, &list); err != nil {
			return nil, fmt.Errorf("GET /api/voicemails: %w", err)
		}
		var vm *apiVoicemail
		for i := range list.Voicemails {
			if list.Voicemails[i].CallSid == callSid {
				vm = &list.Voicemails[i]
			}
		}
		switch {
		case v.Email == "none" && vm != nil:
			problems = append(problems, "a voicemail was stored, want none")
		case v.Email == "none":
		case vm == nil:
			problems = append(problems, "no voicemail for the call")
		default:
			if v.Email != "" && vm.Notification.Status != v.Email {
				problems = append(problems, fmt.Sprintf("voicemail email %q, want %q", vm.Notification.Status, v.Email))
			}
			if v.TranscriptStatus != "" && vm.TranscriptStatus != v.TranscriptStatus {
				problems = append(problems, fmt.Sprintf("transcript status %q, want %q", vm.TranscriptStatus, v.TranscriptStatus))
			}
			if v.Transcript != "" && (vm.Transcript == nil || !strings.Contains(*vm.Transcript, v.Transcript)) {
				problems = append(problems, fmt.Sprintf("transcript %v, want one containing %q", deref(vm.Transcript), v.Transcript))
			}
		}
	}
	return problems, nil
}

func deref(s *string) string {
	if s == nil {
		return "none"
	}
	return fmt.Sprintf("%q", *s)
}

// inOrder reports ("" when fine) whether want are substrings of heard entries, in order.
func inOrder(heard, want []string) string {
	i := 0
	for _, h := range heard {
		if i < len(want) && strings.Contains(h, want[i]) {
			i++
		}
	}
	if i == len(want) {
		return ""
	}
	return fmt.Sprintf("%q, want (in order) %q: missing %q", heard, want, want[i])
}

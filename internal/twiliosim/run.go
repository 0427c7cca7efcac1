package twiliosim

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Entry is one line of a timeline.
type Entry struct {
	At    time.Duration // simulated time since the call started
	Party string        // "caller", a target, "callee", "twilio", "ops", "callrelay", "check"
	Text  string
}

func (e Entry) String() string {
	return fmt.Sprintf("%7.1fs  %-22s %s", e.At.Seconds(), e.Party, e.Text)
}

// run is the state of one scenario being played.
type run struct {
	sc       *Scenario
	start    time.Duration // clock.Elapsed() when the call was placed
	mu       sync.Mutex
	timeline []Entry
	heard    map[string][]string
	failures []string
	notes    []string
	caller   *call
	callee   string // the target that answered
}

// scenario returns the scenario being played (an empty one between runs).
func (s *Sim) scenario() *Scenario {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.run == nil {
		return &Scenario{}
	}
	return s.run.sc
}

// log adds an entry to the timeline.
func (s *Sim) log(party, format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logLocked(party, format, args...)
}

func (s *Sim) logLocked(party, format string, args ...any) {
	r := s.run
	if r == nil {
		return
	}
	e := Entry{At: s.clock.Elapsed() - r.start, Party: party, Text: fmt.Sprintf(format, args...)}
	r.mu.Lock()
	r.timeline = append(r.timeline, e)
	r.mu.Unlock()
	if s.cfg.Log != nil {
		s.cfg.Log(e)
	}
}

// hear records what a party hears, for the timeline and the Heard expectations. The party
// that answered is also heard as "callee".
func (s *Sim) hear(party, what string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hearLocked(party, what)
}

func (s *Sim) hearLocked(party, what string) {
	r := s.run
	if r == nil {
		return
	}
	r.mu.Lock()
	r.heard[party] = append(r.heard[party], what)
	if party != "caller" && party == r.callee {
		r.heard["callee"] = append(r.heard["callee"], what)
	}
	r.mu.Unlock()
	s.logLocked(party, "hears %s", what)
}

// fail records why the scenario did not go as expected.
func (s *Sim) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.run; r != nil {
		r.mu.Lock()
		r.failures = append(r.failures, msg)
		r.mu.Unlock()
	}
	s.logLocked("FAIL", "%s", msg)
}

// noteLocked records something worth telling that is not a failure.
func (s *Sim) noteLocked(msg string) {
	if r := s.run; r != nil {
		r.mu.Lock()
		r.notes = append(r.notes, msg)
		r.mu.Unlock()
	}
}

// goTracked runs f in the background; Run waits for it.
func (s *Sim) goTracked(f func()) {
	s.work.add()
	go func() {
		defer s.work.done()
		f()
	}()
}

// later runs f after the simulated duration d, tracked.
func (s *Sim) later(d time.Duration, f func()) {
	s.work.add()
	s.clock.AfterFunc(d, func() {
		defer s.work.done()
		f()
	})
}

// callbackLocked sends an asynchronous callback (status, conference event, recording,
// transcription), with the scenario's quirks: delivered twice, or late so that callbacks
// arrive out of order. s.mu is held.
func (s *Sim) callbackLocked(h webhook) {
	var q Quirks
	if s.run != nil {
		q = s.run.sc.Callbacks
	}
	delay := time.Duration(0)
	if q.Reorder {
		delay = time.Duration(s.rnd.Float64() * float64(3*time.Second))
	}
	deliver := func() { s.callback(h) }
	s.later(delay, deliver)
	if q.Duplicate {
		s.later(delay+time.Duration(s.rnd.Float64()*float64(time.Second)), func() {
			h := h
			h.what += " (duplicate)"
			s.callback(h)
		})
	}
}

// callback delivers one asynchronous callback now; anything but a 2xx fails the scenario.
func (s *Sim) callback(h webhook) {
	status, body, err := s.deliver(context.Background(), h)
	switch {
	case err != nil:
		s.fail("%s: %v", h.party, err)
	case status < 200 || status > 299:
		s.fail("%s: %s %s answered %d: %s", h.party, h.what, path(h.url), status, strings.TrimSpace(string(body)))
	}
}

// deliver sends a webhook and logs it.
func (s *Sim) deliver(ctx context.Context, h webhook) (int, []byte, error) {
	start := time.Now()
	status, body, err := s.send(ctx, h)
	if err == nil {
		s.log(h.party, "→ %s %s %d (%s) [%s]", h.methodOrPost(), path(h.url), status, time.Since(start).Round(100*time.Microsecond), h.what)
	}
	return status, body, err
}

func (h webhook) methodOrPost() string {
	if h.method == "" {
		return http.MethodPost
	}
	return h.method
}

// Result is what a scenario run produced.
type Result struct {
	Name     string
	CallSid  string
	Timeline []Entry
	Heard    map[string][]string
	Failures []string // empty: the call went as expected
	Notes    []string
	CallJSON string // GET /api/calls/{sid} after a failure
}

// OK reports whether the call went as the scenario expected.
func (r *Result) OK() bool { return len(r.Failures) == 0 }

// Print writes the timeline and the verdict.
func (r *Result) Print(w io.Writer) {
	fmt.Fprintf(w, "== %s (call %s)\n", r.Name, r.CallSid)
	for _, e := range r.Timeline {
		fmt.Fprintln(w, e)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if r.OK() {
		fmt.Fprintf(w, "PASS %s\n\n", r.Name)
		return
	}
	if r.CallJSON != "" {
		fmt.Fprintf(w, "callrelay's call: %s\n", r.CallJSON)
	}
	for _, f := range r.Failures {
		fmt.Fprintf(w, "FAIL: %s\n", f)
	}
	fmt.Fprintf(w, "FAIL %s\n\n", r.Name)
}

func (r *run) result(name, callSid string) *Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	heard := map[string][]string{}
	for k, v := range r.heard {
		heard[k] = slices.Clone(v)
	}
	return &Result{Name: name, CallSid: callSid, Timeline: slices.Clone(r.timeline), Heard: heard,
		Failures: slices.Clone(r.failures), Notes: slices.Clone(r.notes)}
}

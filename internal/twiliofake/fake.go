// Package twiliofake is Twilio's REST API (2010-04-01) for tests and for the simulator: the
// project's one model of Twilio's REST state.
//
// A Fake is two things. Its front (fake.go, spec.go, validate.go) authenticates every request
// and refuses exactly what Twilio's OpenAPI spec (third_party/twilio/twilio-openapi) says
// Twilio would refuse, read from the spec rather than written out per field, so a test that
// passes against the fake sends requests Twilio accepts; it records every request and can be
// told to fail some (Fail). Behind it, its Model (model.go, rest.go) keeps the state of calls,
// conferences and their participants, queues and their members and recordings, for the
// operations callrelay uses, with Twilio's rules (404 for what does not exist, 21220 for a
// call not in progress, 16026 for a label in use, what ends a conference, and, when Rules ask,
// the account's pace and From numbers); it answers the spec's other operations with 501.
//
// Unit tests set the state up and read it through the Fake's helpers (testapi.go: AddCall,
// SetCallStatus, AddParticipant, Participant, …) and play Twilio's webhooks themselves.
// internal/twiliosim plays them instead: it shares the Fake's lock (Options.Mu), drives the
// same Model as calls ring, answer, join and hang up, and hears of every change, whoever made
// it, through Options.OnEvent (events.go), which it turns into webhooks and TwiML.
//
// Start gives a test a fake on a local port that fails the test, at cleanup, for every request
// Twilio would have refused.
package twiliofake

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"sync"
	"time"
)

// Credentials of a Fake whose Options leave them empty. twilio-go refuses credentials that are
// not alphanumeric, so both are.
const (
	DefaultAccountSID = "ACfa4efa4efa4efa4efa4efa4efa4efa4e"
	DefaultAuthToken  = "testtoken123"
)

// Twilio error codes the fake answers besides the validation ones (CodeInvalidParameter,
// CodeInvalidURL). Each is from Twilio's error dictionary (twilio.com/docs/errors/<code>)
// unless its comment says otherwise.
const (
	// CodeAuthenticate (401, message "Authenticate"): missing or wrong credentials, or
	// credentials used on another account's path.
	CodeAuthenticate = 20003
	// CodeMethodNotAllowed (405): the resource exists but not with this HTTP method.
	CodeMethodNotAllowed = 20004
	// CodeQueueNotEmpty (400) answers DeleteQueue on a queue with members. The spec says only
	// "Remove an empty queue" and Twilio documents no code for it: this is the closest
	// documented one ("Cannot delete this resource before it is complete"). Unverified.
	CodeQueueNotEmpty = 20009
	// CodeNotFound (404): "The requested resource <path> was not found".
	CodeNotFound = 20404
	// CodeNotImplemented (501) answers a valid request for an operation the fake does not
	// implement. Twilio has no such answer; 20500 is its generic internal-error code.
	CodeNotImplemented = 20500
	// CodeInvalidCallState (400) "Invalid call state": a realtime operation (redirect, hang
	// up) on a call that is not in progress.
	CodeInvalidCallState = 21220
	// CodeLabelInvalid (400): a participant Label longer than 128 characters, containing '/',
	// or looking like a call SID.
	CodeLabelInvalid = 16024
	// CodeLabelInUse (400): a participant Label already used by an active participant of the
	// conference.
	CodeLabelInUse = 16026
	// CodeTooManyRequests (429) "Too Many Requests": a call placed faster than the account's
	// pace (Rules.CreateInterval).
	CodeTooManyRequests = 20429
	// CodeFromNotVerified (400) "'From' phone number not verified" (Rules.CheckFrom).
	CodeFromNotVerified = 21210
)

// maxBody bounds a request body; Twilio's largest form bodies are far smaller.
const maxBody = 1 << 20

// Options configures a Fake. The zero value is a fake with the default credentials and spec.
type Options struct {
	AccountSID string // DefaultAccountSID when empty
	AuthToken  string // DefaultAuthToken when empty
	Spec       *Spec  // DefaultSpec() when nil
	// NewSid returns a new SID with prefix ("CA", "CF", "QU"); nil: prefix + 32 random hex.
	NewSid func(prefix string) string
	// Now is the fake's clock (recorded times, date fields); nil: time.Now.
	Now func() time.Time
	// Rules switches on the account's limits (pace, From numbers); the zero value has none.
	Rules Rules
	// Mu guards the fake: its request log and its Model. nil: a lock of its own. A simulator
	// passes the lock that guards its own state, so that one lock covers both and it can drive
	// the Model (Fake.Model) while holding it.
	Mu *sync.Mutex
	// OnEvent, when set, is told of every change to the Model, with Mu held (see Event).
	OnEvent func(Event)
}

// Failure is a Twilio error Fail makes the fake answer instead of handling a request.
type Failure struct {
	Status  int    // HTTP status; 400 when zero
	Code    int    // Twilio error code
	Message string // "injected failure" when empty
	Times   int    // how many requests answer it; 1 when zero
}

// Request is a request the fake received.
type Request struct {
	Operation  string            // operationId; "" when the path matched none
	Method     string            // HTTP method
	Path       string            // the path, unescaped
	PathParams map[string]string // the template's parameters, e.g. "CallSid"
	Form       url.Values        // the body for operations that take one, else the query
	Status     int               // the status answered; 0 while the request is being handled
	Code       int               // the Twilio error code answered; 0 when it succeeded
	Message    string            // the Twilio error message answered
	At         time.Time         // when it arrived, by Options.Now
}

// Fake is a fake Twilio REST API. It is an http.Handler, safe for concurrent use.
type Fake struct {
	URL        string // base URL, e.g. http://127.0.0.1:PORT (set by Start)
	AccountSID string
	AuthToken  string

	spec *Spec
	now  func() time.Time

	mu               *sync.Mutex
	model            *Model
	requests         []*Request
	violations       []Violation
	expectViolations bool
	failures         map[string][]*Failure
	hooks            []func(Request)
	answerHooks      []func(Request)
}

var (
	accountSIDPattern = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	alphanumeric      = regexp.MustCompile(`^[a-zA-Z0-9]+$`)
)

// New returns a Fake with no listener: serve it with an http.Server or httptest, and set URL if
// something needs it. It fails when the spec cannot be loaded ($TWILIO_OPENAPI naming a bad
// file) or the credentials are ones twilio-go would refuse.
func New(opts Options) (*Fake, error) {
	f := &Fake{
		AccountSID: opts.AccountSID,
		AuthToken:  opts.AuthToken,
		spec:       opts.Spec,
		now:        opts.Now,
		mu:         opts.Mu,
		failures:   map[string][]*Failure{},
	}
	if f.AccountSID == "" {
		f.AccountSID = DefaultAccountSID
	}
	if f.AuthToken == "" {
		f.AuthToken = DefaultAuthToken
	}
	if !accountSIDPattern.MatchString(f.AccountSID) {
		return nil, fmt.Errorf("twiliofake: account SID %q does not match %s", f.AccountSID, accountSIDPattern)
	}
	if !alphanumeric.MatchString(f.AuthToken) {
		return nil, errors.New("twiliofake: the auth token must be alphanumeric (twilio-go refuses others)")
	}
	if f.spec == nil {
		s, err := DefaultSpec()
		if err != nil {
			return nil, fmt.Errorf("twiliofake: %w", err)
		}
		f.spec = s
	}
	newSid := opts.NewSid
	if newSid == nil {
		newSid = randomSid
	}
	if f.now == nil {
		f.now = time.Now
	}
	if f.mu == nil {
		f.mu = new(sync.Mutex)
	}
	f.model = newModel(f.AccountSID, f.now, newSid, opts.OnEvent, opts.Rules)
	return f, nil
}

// Model is the fake's state, for a simulator that drives it: only with Options.Mu held.
func (f *Fake) Model() *Model { return f.model }

// TB is the part of testing.TB that Start needs; *testing.T and *testing.B have it. Start takes
// this rather than testing.TB so that binaries using the fake (cmd/callsim) do not link the
// testing package.
type TB interface {
	Helper()
	Cleanup(func())
	Errorf(format string, args ...any)
	Fatal(args ...any)
}

// Start returns a Fake served on 127.0.0.1 for the test's lifetime. At cleanup it fails the
// test with every Violation recorded, unless ExpectViolations was called.
func Start(tb TB, opts Options) *Fake {
	tb.Helper()
	f, err := New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(f)
	f.URL = srv.URL
	tb.Cleanup(func() {
		srv.Close()
		f.mu.Lock()
		vs, expected := slices.Clone(f.violations), f.expectViolations
		f.mu.Unlock()
		if expected {
			return
		}
		for _, v := range vs {
			tb.Errorf("twiliofake: Twilio would refuse this request: %v", v)
		}
	})
	return f
}

// Requests returns the requests received so far, in arrival order.
func (f *Fake) Requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Request, len(f.requests))
	for i, r := range f.requests {
		out[i] = r.clone()
	}
	return out
}

// RequestsFor returns the requests for one operation (an operationId), in arrival order.
func (f *Fake) RequestsFor(operation string) []Request {
	var out []Request
	for _, r := range f.Requests() {
		if r.Operation == operation {
			out = append(out, r)
		}
	}
	return out
}

// Violations returns every Violation recorded so far.
func (f *Fake) Violations() []Violation {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.violations)
}

// ExpectViolations stops Start's cleanup from failing the test on violations: for tests of
// refused requests.
func (f *Fake) ExpectViolations() {
	f.mu.Lock()
	f.expectViolations = true
	f.mu.Unlock()
}

// Fail makes the next e.Times valid requests for operation (an operationId) answer e instead
// of being handled: they are recorded, and change no state. Failures queue up in call order.
// It panics if the spec has no such operation, which is a typo in the test.
func (f *Fake) Fail(operation string, e Failure) {
	if _, ok := f.spec.Operation(operation); !ok {
		panic(fmt.Sprintf("twiliofake: Fail: the spec has no operation %q", operation))
	}
	if e.Status == 0 {
		e.Status = http.StatusBadRequest
	}
	if e.Message == "" {
		e.Message = "injected failure"
	}
	if e.Times <= 0 {
		e.Times = 1
	}
	f.mu.Lock()
	f.failures[operation] = append(f.failures[operation], &e)
	f.mu.Unlock()
}

// OnRequest adds a hook called with each valid request before it is handled, outside the
// fake's lock (Status is 0): a hook may block to hold the request, or observe concurrency.
func (f *Fake) OnRequest(fn func(Request)) {
	f.mu.Lock()
	f.hooks = append(f.hooks, fn)
	f.mu.Unlock()
}

// OnAnswer adds a hook called with each request once it is answered (Status, Code and Message
// set; refused ones too), outside the fake's lock.
func (f *Fake) OnAnswer(fn func(Request)) {
	f.mu.Lock()
	f.answerHooks = append(f.answerHooks, fn)
	f.mu.Unlock()
}

func (r *Request) clone() Request {
	c := *r
	c.PathParams = maps.Clone(r.PathParams)
	if r.Form != nil {
		c.Form = make(url.Values, len(r.Form))
		for k, v := range r.Form {
			c.Form[k] = slices.Clone(v)
		}
	}
	return c
}

// twilioError is the JSON body of Twilio's error answers.
type twilioError struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
}

func errorBody(status, code int, message string) twilioError {
	return twilioError{Code: code, Message: message, MoreInfo: fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code), Status: status}
}

// ServeHTTP answers a request as Twilio would: authentication first, then routing, then
// validation against the spec, then the operation.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req := &Request{Method: r.Method, Path: r.URL.Path, At: f.now()}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		f.refuse(w, req, http.StatusBadRequest, CodeInvalidParameter, "", Violation{In: "request", Keyword: KeywordContentType, Rule: "unreadable body: " + err.Error(), Code: CodeInvalidParameter})
		return
	}
	t, pathParams := f.spec.matchPath(r.URL.EscapedPath())
	var op *Operation
	if t != nil {
		op = t.ops[r.Method]
	}
	if op != nil {
		req.Operation, req.PathParams = op.ID, pathParams
	}

	// Twilio authenticates before anything else: a wrong path without credentials is a 401.
	if user, pass, ok := r.BasicAuth(); !ok || user != f.AccountSID || pass != f.AuthToken {
		rule := "missing basic auth credentials"
		if ok {
			rule = "wrong account SID or auth token"
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
		f.refuse(w, req, http.StatusUnauthorized, CodeAuthenticate, "Authenticate",
			Violation{Operation: req.Operation, In: "header", Field: "Authorization", Keyword: KeywordAuth, Rule: rule, Code: CodeAuthenticate})
		return
	}
	if t == nil {
		f.refuse(w, req, http.StatusNotFound, CodeNotFound, notFoundMessage(req.Path),
			Violation{In: "path", Value: req.Path, Keyword: KeywordPath, Rule: "no operation of the spec has this path", Code: CodeNotFound})
		return
	}
	if op == nil {
		f.refuse(w, req, http.StatusMethodNotAllowed, CodeMethodNotAllowed, "Method not allowed",
			Violation{In: "request", Field: r.Method, Keyword: KeywordMethod, Rule: "the spec has no " + r.Method + " on " + t.path, Code: CodeMethodNotAllowed})
		return
	}

	form, vs := readForm(op, r, body)
	req.Form = form
	if len(vs) == 0 {
		vs = append(op.Validate(pathParams, form), twilioRules(op, form)...)
	}
	if len(vs) > 0 {
		f.refuse(w, req, http.StatusBadRequest, vs[0].Code, "", vs...)
		return
	}
	// Twilio checks the credentials against the account in the path: its 20003 page lists
	// "using subaccount credentials to access master account" among the causes. So another
	// account's path is a 401 (not a 404: the fake has only one account, and a 404 would
	// read as a missing call or participant).
	if sid, ok := pathParams["AccountSid"]; ok && sid != f.AccountSID {
		w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
		f.refuse(w, req, http.StatusUnauthorized, CodeAuthenticate, "Authenticate",
			Violation{Operation: op.ID, In: "path", Field: "AccountSid", Value: pathParams["AccountSid"], Keyword: KeywordAuth, Rule: "is not the account of the credentials", Code: CodeAuthenticate})
		return
	}

	f.mu.Lock()
	f.requests = append(f.requests, req)
	hooks := slices.Clone(f.hooks)
	f.mu.Unlock()
	for _, h := range hooks {
		h(req.clone())
	}

	f.mu.Lock()
	status, answer, handled := f.injected(op)
	if !handled {
		status, answer = f.model.serve(op, req)
	}
	tell := f.answeredLocked(req, status, answer)
	f.mu.Unlock()
	tell()
	writeJSON(w, status, answer)
}

// answeredLocked records a request's answer, and returns what tells the OnAnswer hooks of it,
// to be called once f.mu is released.
func (f *Fake) answeredLocked(req *Request, status int, answer any) (tell func()) {
	req.Status = status
	if e, ok := answer.(twilioError); ok {
		req.Code, req.Message = e.Code, e.Message
	}
	c, hooks := req.clone(), slices.Clone(f.answerHooks)
	return func() {
		for _, h := range hooks {
			h(c)
		}
	}
}

// refuse records a refused request and its violations, and answers Twilio's error: code and
// message, or when message is empty the violations as "<field>: <rule>; …".
func (f *Fake) refuse(w http.ResponseWriter, req *Request, status, code int, message string, vs ...Violation) {
	if message == "" {
		for i, v := range vs {
			if i > 0 {
				message += "; "
			}
			message += v.message()
		}
	}
	e := errorBody(status, code, message)
	if code == CodeAuthenticate {
		e.Detail = "Your AccountSid or AuthToken was incorrect."
	}
	f.mu.Lock()
	f.requests = append(f.requests, req)
	f.violations = append(f.violations, vs...)
	tell := f.answeredLocked(req, status, e)
	f.mu.Unlock()
	tell()
	writeJSON(w, status, e)
}

// readForm returns the fields of a request: its form body for an operation that takes one,
// else its query string.
func readForm(op *Operation, r *http.Request, body []byte) (url.Values, []Violation) {
	bad := func(in, field, value, rule string) []Violation {
		kw := KeywordContentType
		if in == "query" {
			kw = KeywordUnknown
		}
		return []Violation{{Operation: op.ID, In: in, Field: field, Value: value, Keyword: kw, Rule: rule, Code: CodeInvalidParameter}}
	}
	if op.body == nil {
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return q, bad("query", "", r.URL.RawQuery, "is not valid form encoding: "+err.Error())
		}
		return q, nil
	}
	if r.URL.RawQuery != "" {
		return nil, bad("query", "", r.URL.RawQuery, op.ID+" takes its parameters in the form body, not the query string")
	}
	if len(body) == 0 {
		return url.Values{}, nil
	}
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || !slices.Contains(op.body.contentTypes, mt) {
		return nil, bad("header", "Content-Type", ct, "must be "+formContentType)
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return form, bad("body", "", "", "is not valid form encoding: "+err.Error())
	}
	return form, nil
}

// callSIDLike is what Twilio's 16024 says a participant label must not look like.
var callSIDLike = regexp.MustCompile(`^CA[0-9a-f]{32}$`)

// twilioRules checks what Twilio documents beyond the schema for the operations callrelay uses.
func twilioRules(op *Operation, form url.Values) []Violation {
	var vs []Violation
	switch op.ID {
	case "CreateParticipant":
		// Error 16024: "It may not exceed 128 characters, it may not be a CallSid, and it may
		// not contain a '/'".
		if l := form.Get("Label"); l != "" && (len([]rune(l)) > 128 || callSIDLike.MatchString(l) || containsSlash(l)) {
			vs = append(vs, Violation{Operation: op.ID, In: "body", Field: "Label", Value: l, Keyword: KeywordTwilio,
				Rule: "must not exceed 128 characters, look like a call SID or contain '/' (Twilio error 16024)", Code: CodeLabelInvalid})
		}
	case "CreateCall":
		// The spec: Url, Twiml or ApplicationSid says what the call does; Twilio refuses a call
		// without one (error 21205, "Url parameter is required").
		if !form.Has("Url") && !form.Has("Twiml") && !form.Has("ApplicationSid") {
			vs = append(vs, Violation{Operation: op.ID, In: "body", Field: "Url", Keyword: KeywordTwilio,
				Rule: "one of Url, Twiml or ApplicationSid is required (Twilio error 21205)", Code: CodeInvalidParameter})
		}
		fallthrough
	case "UpdateCall":
		// The spec's Twiml description: "Twiml and url parameters are mutually exclusive".
		if form.Has("Twiml") && form.Has("Url") {
			vs = append(vs, Violation{Operation: op.ID, In: "body", Field: "Twiml", Keyword: KeywordTwilio,
				Rule: "Twiml and Url are mutually exclusive (the spec's Twiml description)", Code: CodeInvalidParameter})
		}
	}
	return vs
}

func containsSlash(s string) bool {
	for _, c := range s {
		if c == '/' {
			return true
		}
	}
	u, err := url.QueryUnescape(s)
	return err == nil && u != s && containsSlash(u)
}

// injected answers the failure Fail queued for a request, if any. f.mu is held.
func (f *Fake) injected(op *Operation) (int, any, bool) {
	q := f.failures[op.ID]
	if len(q) == 0 {
		return 0, nil, false
	}
	e := q[0]
	if e.Times--; e.Times == 0 {
		f.failures[op.ID] = q[1:]
	}
	return e.Status, errorBody(e.Status, e.Code, e.Message), true
}

func notFoundMessage(path string) string {
	return "The requested resource " + path + " was not found"
}

// writeJSON answers status with v as JSON; a nil v answers no body (204).
func writeJSON(w http.ResponseWriter, status int, v any) {
	if v == nil {
		w.WriteHeader(status)
		return
	}
	data, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "twiliofake: encoding the answer: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

// randomSid returns prefix and 32 random hex digits, like Twilio's SIDs.
func randomSid(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail
	return prefix + hex.EncodeToString(b[:])
}

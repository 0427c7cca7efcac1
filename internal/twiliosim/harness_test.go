package twiliosim_test

import (
	"context"
	"encoding/json"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callrelay/callrelay/internal/clocktest"
	"github.com/callrelay/callrelay/internal/twiliosim"
)

// The simulator's own tests drive it directly: a tiny webhook server stands in for callrelay,
// answering each path with fixed TwiML, and the test makes callrelay's REST requests itself.

const (
	acct   = "AC0123456789abcdef0123456789abcdef"
	token  = "simtoken123"
	number = "+15551230000" // the masked number the scenarios call: the account's
	from   = "+15559870000" // the caller (the scenarios' default)
)

// hook is one webhook the simulator sent.
type hook struct {
	Path string
	Form url.Values
	At   time.Time // simulated time it arrived
}

// relay is the webhook server: TwiML for the paths it has a document for ({base} in it is
// its own URL), 204 for the others (callbacks). It records every request.
type relay struct {
	srv   *httptest.Server
	clock *twiliosim.Clock
	twiml map[string]string

	mu     sync.Mutex
	hooks  []hook
	notify chan struct{} // closed and replaced on each request
}

func (r *relay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if err := req.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.hooks = append(r.hooks, hook{Path: req.URL.Path, Form: req.PostForm, At: r.clock.Now()})
	close(r.notify)
	r.notify = make(chan struct{})
	doc, ok := r.twiml[req.URL.Path]
	r.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>`+strings.ReplaceAll(doc, "{base}", r.srv.URL))
}

// got returns the requests for path so far.
func (r *relay) got(path string) []hook {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []hook
	for _, h := range r.hooks {
		if h.Path == path {
			out = append(out, h)
		}
	}
	return out
}

// await returns the first request for path whose form has the given key=value pairs, waiting
// up to 30 s for it.
func (r *relay) await(t *testing.T, path string, kv ...string) hook {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		r.mu.Lock()
		notify := r.notify
		for _, h := range r.hooks {
			if h.Path == path && matches(h.Form, kv) {
				r.mu.Unlock()
				return h
			}
		}
		r.mu.Unlock()
		select {
		case <-notify:
		case <-deadline:
			t.Fatalf("no request for %s with %v came", path, kv)
		}
	}
}

func matches(f url.Values, kv []string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		if f.Get(kv[i]) != kv[i+1] {
			return false
		}
	}
	return true
}

// sim is a simulator with its REST API on a local port and a relay for its webhooks.
type sim struct {
	*twiliosim.Sim
	t       *testing.T
	api     string // the REST API's base URL
	relay   *relay
	entries chan twiliosim.Entry // the timeline as it happens
}

// newSim starts a simulator at speed (simulated seconds per real one) whose webhooks the
// relay answers with these TwiML documents, by path.
func newSim(t *testing.T, speed float64, twiml map[string]string) *sim {
	t.Helper()
	clock := twiliosim.NewClock(clocktest.Now(), speed)
	r := &relay{clock: clock, twiml: twiml, notify: make(chan struct{})}
	r.srv = httptest.NewServer(r)
	t.Cleanup(r.srv.Close)
	s := &sim{t: t, relay: r, entries: make(chan twiliosim.Entry, 10000)}
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { s.ServeHTTP(w, req) }))
	t.Cleanup(api.Close)
	s.api = api.URL
	var err error
	s.Sim, err = twiliosim.New(twiliosim.Config{
		AccountSID: acct, AuthToken: token, BaseURL: r.srv.URL, APIURL: api.URL, Clock: clock,
		Rand: mrand.New(mrand.NewPCG(1, 2)),
		Log: func(e twiliosim.Entry) {
			select { // called under the simulator's lock: never block it
			case s.entries <- e:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// play starts a scenario (YAML; number and voice_path are filled in) and returns a function
// that waits for its end and fails the test if it did not go as expected.
func (s *sim) play(scenario string) (wait func() *twiliosim.Result) {
	s.t.Helper()
	sc, err := twiliosim.ParseScenario([]byte("number: \"" + number + "\"\nvoice_path: /voice\n" + scenario))
	if err != nil {
		s.t.Fatalf("scenario: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	done := make(chan *twiliosim.Result, 1)
	finished := make(chan struct{})
	// A test that stops before wait (t.Fatal) must not leave the scenario running past its end.
	s.t.Cleanup(func() { cancel(); <-finished })
	go func() {
		defer close(finished)
		defer cancel()
		res, err := s.Run(ctx, sc, 0)
		if err != nil {
			s.t.Errorf("Run: %v", err)
		}
		done <- res
	}()
	return func() *twiliosim.Result {
		s.t.Helper()
		res := <-done
		if res == nil {
			s.t.FailNow()
		}
		if !res.OK() {
			var b strings.Builder
			res.Print(&b)
			s.t.Fatalf("the scenario did not go as expected:\n%s", b.String())
		}
		return res
	}
}

// run plays a scenario to its end.
func (s *sim) run(scenario string) *twiliosim.Result {
	s.t.Helper()
	return s.play(scenario)()
}

// awaitEntry waits for a timeline entry of party containing text.
func (s *sim) awaitEntry(party, text string) twiliosim.Entry {
	s.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case e := <-s.entries:
			if e.Party == party && strings.Contains(e.Text, text) {
				return e
			}
		case <-deadline:
			s.t.Fatalf("no timeline entry %q for %s", text, party)
		}
	}
}

// rest makes a REST request as callrelay would (path under the account, form-encoded) and
// returns the status and the decoded JSON answer.
func (s *sim) rest(method, path string, form url.Values) (int, map[string]any) {
	s.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, s.api+"/2010-04-01/Accounts/"+acct+path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.SetBasicAuth(acct, token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	if data, _ := io.ReadAll(res.Body); len(data) > 0 {
		if err := json.Unmarshal(data, &out); err != nil {
			s.t.Fatalf("%s %s: %d %q is not JSON", method, path, res.StatusCode, data)
		}
	}
	return res.StatusCode, out
}

// code is a Twilio error answer's code.
func code(body map[string]any) int {
	f, _ := body["code"].(float64)
	return int(f)
}

// entryAt returns the simulated time of the first timeline entry of party containing text.
func entryAt(t *testing.T, res *twiliosim.Result, party, text string) time.Duration {
	t.Helper()
	for _, e := range res.Timeline {
		if e.Party == party && strings.Contains(e.Text, text) {
			return e.At
		}
	}
	t.Fatalf("no timeline entry %q for %s", text, party)
	return 0
}

// heard reports whether party heard something containing text.
func heard(res *twiliosim.Result, party, text string) bool {
	for _, h := range res.Heard[party] {
		if strings.Contains(h, text) {
			return true
		}
	}
	return false
}

// form is url.Values from key, value pairs.
func form(kv ...string) url.Values {
	f := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		f.Add(kv[i], kv[i+1])
	}
	return f
}

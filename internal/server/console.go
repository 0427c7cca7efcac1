package server

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/recording"
	"github.com/prometheus/client_golang/prometheus"
)

// The ops console (/console) and the owners' inbox (/inbox): server-rendered pages over the
// same store methods and services as the ops API, with their errors (409, 502 with Twilio's
// message, 400 naming the field) shown in the page. The console lives in package server, in
// the console*.go files, because it must behave exactly as the API: it shares its audio
// serving (Range, 410), error codes and statuses (statusOf), the routing cache that a routing
// change must refresh, and the hold service.

// console is what the console's and the inbox's handlers share.
type console struct {
	db        *postgres.DB
	hold      holder
	cache     *routingCache
	links     *recording.Links
	audio     audioSource
	stall     time.Duration
	purge     func(context.Context, int64) error
	tmpl      *consoleTemplates
	hub       *feedHub
	beat      time.Duration // StreamBeat
	opsToken  string
	publicURL *url.URL
	secure    bool
	now       func() time.Time
}

// Streams ends the console's event streams at shutdown: give its Close to
// http.Server.RegisterOnShutdown (a stream never goes idle by itself). Deps.Streams.
type Streams struct {
	mu  sync.Mutex
	hub *feedHub
}

// Close ends every open stream now, and any opened later.
func (s *Streams) Close() {
	s.mu.Lock()
	h := s.hub
	s.mu.Unlock()
	if h != nil {
		h.Close()
	}
}

func newConsole(d Deps, cache *routingCache) *console {
	tmpl := newConsoleTemplates(d.Config.TimeZone.Location)
	c := &console{
		db: d.DB, hold: d.Hold, cache: cache, links: d.Links,
		audio: audioSource{d.DB, d.Recordings, d.Media}, stall: d.AudioStall, purge: d.PurgeRecording,
		tmpl: tmpl, hub: newFeedHub(d.DB, tmpl, d.Logger, d.FeedPoll), beat: cmp.Or(d.StreamBeat, StreamBeat),
		opsToken: d.Config.OpsToken.Value(), publicURL: d.Config.PublicURL.URL, now: d.Now,
	}
	c.secure = c.publicURL != nil && c.publicURL.Scheme == "https"
	d.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "callrelay_console_streams",
		Help: "Console event streams open on this replica (browsers on the live pages).",
	}, func() float64 { return float64(c.hub.streams()) }))
	if d.Streams != nil {
		d.Streams.mu.Lock()
		d.Streams.hub = c.hub
		d.Streams.mu.Unlock()
	}
	return c
}

func (c *console) page(r *http.Request, title, nav string) consolePage {
	p := consolePage{Title: title, Nav: nav, Session: true, FieldErrors: map[string]string{}, Form: r.URL.Query()}
	if s := sessionOf(r.Context()); s != nil {
		p.CSRF = s.csrf
	}
	return p
}

// fail shows err in a page of its own with its status (ops API's mapping).
func (c *console) fail(w http.ResponseWriter, r *http.Request, err error) {
	p := c.page(r, "Something went wrong", "")
	p.Data = errorText(r, err)
	code := callrelay.ErrorCode(err)
	c.tmpl.render(w, r, statusOf(code), "error", p)
}

// errorText is an error as the page shows it: the API's message, and Twilio's when it
// answered. An internal error, which the page shows as "Internal error.", is logged here, once.
func errorText(r *http.Request, err error) string {
	if callrelay.ErrorCode(err) == callrelay.EINTERNAL {
		logger(r.Context()).Error("console: internal error", slog.String("path", r.URL.Path), slog.String("error", err.Error()))
	}
	msg := callrelay.ErrorMessage(err)
	var e *callrelay.Error
	if errors.As(err, &e) && e.TwilioMessage != "" {
		msg += " Twilio: " + e.TwilioMessage
		if e.TwilioCode != 0 {
			msg += " (" + strconv.Itoa(e.TwilioCode) + ")"
		}
	}
	return msg
}

func handleConsoleStatic() http.Handler {
	sub, _ := fs.Sub(consoleFiles, "console/static")
	return http.StripPrefix("/console/static/", http.FileServerFS(sub))
}

// Live calls.

func (c *console) handleLive() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.renderLive(w, r, http.StatusOK, "", "")
	})
}

// renderLive shows the calls in progress; errSid's row shows errMsg (a refused hold).
func (c *console) renderLive(w http.ResponseWriter, r *http.Request, status int, errSid, errMsg string) {
	calls, err := c.db.SearchCalls(r.Context(), callrelay.CallSearch{Live: true, Limit: 100})
	if err != nil {
		c.fail(w, r, err)
		return
	}
	p := c.page(r, "Calls in progress", "live")
	p.Stream = "/console/events"
	rows := make([]callRow, 0, len(calls))
	for _, call := range calls {
		row := callRow{Call: call, Live: true, CSRF: p.CSRF}
		if call.CallSid == errSid {
			row.Err = errMsg
		}
		rows = append(rows, row)
	}
	if errSid != "" && !slices.ContainsFunc(calls, func(x *callrelay.Call) bool { return x.CallSid == errSid }) {
		p.Error = errMsg
	}
	p.Data = rows
	c.tmpl.render(w, r, status, "live", p)
}

// handleConsoleHold holds or resumes a party through the same service as the ops API; a
// refusal is shown on the call's row with the API's status (409, 502 and Twilio's message).
func (c *console) handleConsoleHold(hold bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !c.checkForm(w, r, sessionOf(r.Context()).csrf) {
			return
		}
		sid := r.PathValue("callSid")
		party := r.PostForm.Get("party")
		var err error
		if !callrelay.ValidParty(party) {
			err = callrelay.Invalidf("party", "party must be %q or %q.", callrelay.PartyCaller, callrelay.PartyCallee)
		} else {
			_, err = applyHold(r, c.hold, callrelay.HoldRequest{CallSid: sid, Party: party, Hold: hold, By: "ops (console)",
				RequestID: w.Header().Get("X-Request-Id")})
		}
		if err != nil {
			c.renderLive(w, r, statusOf(callrelay.ErrorCode(err)), sid, errorText(r, err))
			return
		}
		http.Redirect(w, r, "/console", http.StatusSeeOther)
	})
}

// Call history and timeline.

func (c *console) handleCalls() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := c.page(r, "Call history", "calls")
		q := r.URL.Query()
		f := callrelay.CallSearch{Number: strings.TrimSpace(q.Get("number")), Status: q.Get("status"), Limit: 200}
		if f.Number != "" && !callrelay.ValidNumber(f.Number) {
			p.FieldErrors["number"] = "Write the number in E.164, like +15551230000."
		}
		if f.Status != "" && !slices.Contains(callStatuses, f.Status) {
			p.FieldErrors["status"] = "Not a call status."
		}
		day := func(name string) *time.Time {
			s := q.Get(name)
			if s == "" {
				return nil
			}
			t, err := time.ParseInLocation(time.DateOnly, s, c.tmpl.zone)
			if err != nil {
				p.FieldErrors[name] = "A date, like 2025-01-31."
				return nil
			}
			return &t
		}
		f.From = day("from")
		if to := day("to"); to != nil {
			end := to.AddDate(0, 0, 1)
			f.Until = &end
		}
		if f.From != nil && f.Until != nil && !f.Until.After(*f.From) {
			p.FieldErrors["to"] = "The end comes before the start."
		}
		if len(p.FieldErrors) > 0 {
			p.Data = []*callrelay.Call{}
			c.tmpl.render(w, r, http.StatusBadRequest, "calls", p)
			return
		}
		calls, err := c.db.SearchCalls(r.Context(), f)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		p.Data = calls
		c.tmpl.render(w, r, http.StatusOK, "calls", p)
	})
}

func (c *console) handleCall() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		call, err := c.db.GetCall(r.Context(), r.PathValue("callSid"))
		if err != nil {
			c.fail(w, r, err)
			return
		}
		p := c.page(r, "Call "+call.CallSid, "calls")
		p.Stream = "/console/events"
		live := call.EndedAt == nil && !callrelay.IsTerminal(call.Status)
		p.Data = struct {
			Row  callRow
			Call *callrelay.Call
		}{callRow{Call: call, Live: live, CSRF: p.CSRF}, call}
		c.tmpl.render(w, r, http.StatusOK, "call", p)
	})
}

// Voicemails.

func (c *console) handleVoicemails() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.renderVoicemails(w, r, http.StatusOK, 0, "")
	})
}

func (c *console) renderVoicemails(w http.ResponseWriter, r *http.Request, status int, errID int64, errMsg string) {
	p := c.page(r, "Voicemails", "voicemails")
	p.Stream = "/console/events"
	q := r.URL.Query()
	f := callrelay.ConsoleVoicemailFilter{Number: strings.TrimSpace(q.Get("number")), Status: q.Get("status"), Limit: 100}
	if f.Number != "" && !callrelay.ValidNumber(f.Number) {
		p.FieldErrors["number"] = "Write the number in E.164, like +15551230000."
		status, f.Number = http.StatusBadRequest, ""
	}
	if !slices.Contains([]string{"", callrelay.VoicemailNew, callrelay.VoicemailHandled, callrelay.VoicemailDeleted}, f.Status) {
		f.Status = ""
	}
	vms, err := c.db.ListConsoleVoicemails(r.Context(), f)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	rows := make([]vmRow, len(vms))
	for i, vm := range vms {
		rows[i] = vmRow{VM: vm, Base: "/console", CSRF: p.CSRF, Ops: true}
		if vm.ID == errID {
			rows[i].Err = errMsg
		}
	}
	if errID != 0 && !slices.ContainsFunc(vms, func(v *callrelay.ConsoleVoicemail) bool { return v.ID == errID }) {
		p.Error = errMsg
	}
	p.Data = rows
	c.tmpl.render(w, r, status, "voicemails", p)
}

func (c *console) handleConsoleHandled() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !c.checkForm(w, r, sessionOf(r.Context()).csrf) {
			return
		}
		id, err := voicemailID(r)
		if err == nil {
			_, err = c.db.MarkVoicemailHandled(r.Context(), id, "ops")
		}
		if err != nil {
			c.renderVoicemails(w, r, statusOf(callrelay.ErrorCode(err)), id, errorText(r, err))
			return
		}
		http.Redirect(w, r, "/console/voicemails#vm-"+itoa64(id), http.StatusSeeOther)
	})
}

// handleConsoleDelete deletes a voicemail's audio and transcript as DELETE /api/voicemails/{id}.
func (c *console) handleConsoleDelete() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !c.checkForm(w, r, sessionOf(r.Context()).csrf) {
			return
		}
		id, err := voicemailID(r)
		if err == nil {
			err = deleteVoicemail(r, c.db, c.purge, id)
		}
		if err != nil {
			c.renderVoicemails(w, r, statusOf(callrelay.ErrorCode(err)), id, errorText(r, err))
			return
		}
		http.Redirect(w, r, "/console/voicemails#vm-"+itoa64(id), http.StatusSeeOther)
	})
}

// handleConsoleAudio serves a voicemail's audio to the console's player, as the ops API does
// (Range on callrelay's copy, 410 once deleted).
func (c *console) handleConsoleAudio() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		vm, err := pathVoicemail(c.db, r)
		if err == nil {
			err = serveAudio(w, r, c.audio, vm, c.stall)
		}
		if err != nil {
			status := statusOf(callrelay.ErrorCode(err))
			http.Error(w, callrelay.ErrorMessage(err), status)
		}
	})
}

// Numbers.

func (c *console) handleNumbers() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ns, _, err := c.db.ListNumbers(r.Context(), callrelay.NumberPage{Limit: postgres.MaxListLimit, After: r.URL.Query().Get("after")})
		if err != nil {
			c.fail(w, r, err)
			return
		}
		p := c.page(r, "Numbers", "numbers")
		p.Data = ns
		c.tmpl.render(w, r, http.StatusOK, "numbers", p)
	})
}

// routingForm is a routing as the form's fields: top-level values as text, the targets and
// the rest as JSON.
func routingForm(rt callrelay.Routing) url.Values {
	f := url.Values{}
	f.Set("owner_email", rt.OwnerEmail)
	f.Set("label", rt.Label)
	f.Set("mode", rt.Mode)
	f.Set("ring", rt.Ring)
	f.Set("timeout_seconds", strconv.Itoa(rt.TimeoutSeconds))
	f.Set("caller_id", rt.CallerID)
	f.Set("greeting", rt.Greeting)
	f.Set("language", rt.Language)
	f.Set("time_zone", rt.TimeZone)
	f.Set("machine_detection", strconv.FormatBool(rt.MachineDetection))
	f.Set("enabled", strconv.FormatBool(rt.Enabled))
	f.Set("voicemail.enabled", strconv.FormatBool(rt.Voicemail.Enabled))
	f.Set("voicemail.transcribe", strconv.FormatBool(rt.Voicemail.Transcribe))
	f.Set("voicemail.max_length_seconds", strconv.Itoa(rt.Voicemail.MaxLengthSeconds))
	targets, _ := json.MarshalIndent(rt.Redacted().Targets, "", "  ")
	f.Set("targets", string(targets))
	more := map[string]any{}
	if rt.Schedule != nil {
		more["schedule"] = rt.Schedule
	}
	if rt.AfterHours != nil {
		more["after_hours"] = rt.AfterHours
	}
	if rt.Callers != nil {
		more["callers"] = rt.Callers
	}
	if rt.Notify != nil {
		more["notify"] = rt.Notify
	}
	if rt.Voice != "" {
		more["voice"] = rt.Voice
	}
	if rt.GreetingURL != "" {
		more["greeting_url"] = rt.GreetingURL
	}
	vm := map[string]any{}
	if rt.Voicemail.Prompt != "" {
		vm["prompt"] = rt.Voicemail.Prompt
	}
	if rt.Voicemail.PromptURL != "" {
		vm["prompt_url"] = rt.Voicemail.PromptURL
	}
	if rt.Voicemail.Format != "" {
		vm["format"] = rt.Voicemail.Format
	}
	if rt.Voicemail.DeleteAtTwilio != nil {
		vm["delete_at_twilio"] = *rt.Voicemail.DeleteAtTwilio
	}
	if rt.Voicemail.RetentionDays != nil {
		vm["retention_days"] = *rt.Voicemail.RetentionDays
	}
	if len(vm) > 0 {
		more["voicemail"] = vm
	}
	b, _ := json.MarshalIndent(more, "", "  ")
	f.Set("more", string(b))
	return f
}

// routingBody builds the PUT /api/numbers body from the form. Whatever the API would refuse
// it leaves to callrelay.DecodeRouting, so the form shows the API's own messages; only what
// the form itself cannot turn into JSON is refused here, naming the field.
func routingBody(f url.Values, old *callrelay.Routing) ([]byte, error) {
	body := map[string]any{}
	if s := strings.TrimSpace(f.Get("more")); s != "" {
		if err := json.Unmarshal([]byte(s), &body); err != nil {
			return nil, callrelay.Invalidf("more", "Not a JSON object: %v.", err)
		}
	}
	for _, k := range []string{"owner_email", "label", "mode", "ring", "caller_id", "greeting", "language", "time_zone"} {
		if v := strings.TrimSpace(f.Get(k)); v != "" {
			body[k] = v
		}
	}
	if v := strings.TrimSpace(f.Get("timeout_seconds")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, callrelay.Invalidf("timeout_seconds", "timeout_seconds must be a whole number of seconds.")
		}
		body["timeout_seconds"] = n
	}
	body["machine_detection"] = f.Get("machine_detection") == "true"
	body["enabled"] = f.Get("enabled") == "true"
	vm, _ := body["voicemail"].(map[string]any)
	if vm == nil {
		vm = map[string]any{}
	}
	vm["enabled"] = f.Get("voicemail.enabled") == "true"
	vm["transcribe"] = f.Get("voicemail.transcribe") == "true"
	if v := strings.TrimSpace(f.Get("voicemail.max_length_seconds")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, callrelay.Invalidf("voicemail.max_length_seconds", "voicemail.max_length_seconds must be a whole number of seconds.")
		}
		vm["max_length_seconds"] = n
	}
	body["voicemail"] = vm
	var targets []callrelay.Target
	if s := strings.TrimSpace(f.Get("targets")); s != "" {
		if err := json.Unmarshal([]byte(s), &targets); err != nil {
			return nil, callrelay.Invalidf("targets", "Not a JSON list of targets: %v.", err)
		}
	}
	// The form shows targets without their SIP passwords: one left out keeps the old one.
	if old != nil {
		for i := range targets {
			t := &targets[i]
			if t.Type != callrelay.TargetSIP || t.Password != "" {
				continue
			}
			for _, o := range old.Targets {
				if o.Type == callrelay.TargetSIP && o.URI == t.URI && o.Username == t.Username {
					t.Password = o.Password
					break
				}
			}
		}
	}
	body["targets"] = targets
	return json.Marshal(body)
}

// fieldOf is the form field an API error's field is shown next to.
func fieldOf(field string) string {
	switch {
	case field == "":
		return ""
	case strings.HasPrefix(field, "targets"):
		return "targets"
	case slices.Contains([]string{"voicemail.enabled", "voicemail.transcribe", "voicemail.max_length_seconds"}, field):
		return field
	case strings.ContainsAny(field, ".["):
		return "more"
	case slices.Contains([]string{"voice", "greeting_url", "schedule", "after_hours", "callers", "notify"}, field):
		return "more"
	}
	return field
}

func (c *console) handleNumber() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := c.page(r, "New number", "numbers")
		if raw := r.PathValue("number"); raw != "new" {
			number, err := pathNumber(r)
			if err != nil {
				c.fail(w, r, err)
				return
			}
			n, err := c.db.GetNumber(r.Context(), number)
			if err != nil {
				c.fail(w, r, err)
				return
			}
			p.Title, p.Data, p.Form = "Number "+number, number, routingForm(n.Routing)
			if r.URL.Query().Get("saved") != "" {
				p.Notice = "Saved."
			}
		} else {
			p.Form = routingForm(callrelay.Routing{Mode: callrelay.ModeDirect, Ring: callrelay.RingSimultaneous,
				TimeoutSeconds: callrelay.DefaultTimeoutSeconds, CallerID: callrelay.CallerIDCaller, Language: callrelay.DefaultLanguage,
				Enabled: true, Voicemail: callrelay.VoicemailSettings{Enabled: true, Transcribe: true}})
		}
		c.tmpl.render(w, r, http.StatusOK, "number", p)
	})
}

// handleSaveNumber saves the routing form as PUT /api/numbers/{number} does.
func (c *console) handleSaveNumber() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !c.checkForm(w, r, sessionOf(r.Context()).csrf) {
			return
		}
		p := c.page(r, "New number", "numbers")
		p.Form = r.PostForm
		var number string
		var old *callrelay.Routing
		var err error
		if r.PathValue("number") == "new" {
			number = strings.TrimSpace(r.PostForm.Get("number"))
			if !callrelay.ValidNumber(number) {
				err = callrelay.Invalidf("number", "Number %q is not E.164, like +15551230000.", number)
			}
		} else if number, err = pathNumber(r); err == nil {
			p.Title, p.Data = "Number "+number, number
			// The stored routing keeps the SIP passwords the form does not show: without it
			// (the store failing), saving would drop them.
			if n, gerr := c.db.GetNumber(r.Context(), number); gerr == nil {
				old = &n.Routing
			} else if callrelay.ErrorCode(gerr) != callrelay.ENOTFOUND {
				c.fail(w, r, gerr)
				return
			}
		}
		var rt callrelay.Routing
		if err == nil {
			var body []byte
			if body, err = routingBody(r.PostForm, old); err == nil {
				rt, err = callrelay.DecodeRouting(bytes.NewReader(body))
			}
		}
		if err == nil {
			_, _, err = c.db.PutNumber(r.Context(), number, rt)
		}
		if err != nil {
			var e *callrelay.Error
			if errors.As(err, &e) && fieldOf(e.Field) != "" {
				p.FieldErrors[fieldOf(e.Field)] = errorText(r, err)
			} else {
				p.Error = errorText(r, err)
			}
			c.tmpl.render(w, r, statusOf(callrelay.ErrorCode(err)), "number", p)
			return
		}
		c.cache.put(number, rt)
		http.Redirect(w, r, "/console/numbers/"+url.PathEscape(number)+"?saved=1", http.StatusSeeOther)
	})
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }

// ownerQuery is a token's query for templates (already escaped).
func ownerQuery(t recording.OwnerToken) template.URL {
	return template.URL(t.Query().Encode()) // base64url and digits only: safe in a URL
}

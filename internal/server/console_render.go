package server

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/phone"
)

// The console's and the inbox's pages: html/template files and static files embedded in the
// binary (console/), no build step. Every page is rendered on the server; console.js only
// puts the fragments the change feed sends in place.

//go:embed console/templates/*.html console/static/*
var consoleFiles embed.FS

// consolePage is what every page template gets.
type consolePage struct {
	Title       string
	Nav         string
	Session     bool   // an ops session: the console's navigation and logout
	CSRF        string // the token every state-changing form carries
	Stream      string // the change feed's URL, when the page updates live
	Owner       string // the inbox's owner email
	OwnerQuery  template.URL
	OwnerToken  url.Values
	Error       string
	Notice      string
	FieldErrors map[string]string
	Form        url.Values
	Numbers     []string
	Missed      []*callrelay.MissedCall
	Data        any
}

// callRow is a call as the live view and the call page show it.
type callRow struct {
	Call *callrelay.Call
	Live bool
	CSRF string
	Err  string
}

// vmRow is a voicemail in a list or on its page: Base and Query say whose URLs its player and
// forms use (the console's, or the inbox's with the owner token).
type vmRow struct {
	VM    *callrelay.ConsoleVoicemail
	Base  string
	Query template.URL
	CSRF  string
	Ops   bool
	Err   string
}

// csrfMark stands for the session's CSRF token in fragments the change feed renders once for
// every browser; each stream puts its own token in (handleConsoleEvents).
const csrfMark = "__CSRF__"

// consoleTemplates holds one template set per page.
type consoleTemplates struct {
	pages map[string]*template.Template
	zone  *time.Location
}

func newConsoleTemplates(zone *time.Location) *consoleTemplates {
	if zone == nil {
		zone = time.UTC
	}
	t := &consoleTemplates{pages: map[string]*template.Template{}, zone: zone}
	funcs := template.FuncMap{
		"shown": func(n, home string) string { return phone.Show(n, home).Text },
		"when":  func(at time.Time) string { return at.In(zone).Format("Mon 2 Jan 15:04:05 MST") },
		"clock": func(at time.Time) string { return at.In(zone).Format("15:04:05") },
		"iso":   func(at time.Time) string { return at.UTC().Format(time.RFC3339) },
		"deref": func(at *time.Time) time.Time {
			if at == nil {
				return time.Time{}
			}
			return *at
		},
		"duration": func(s int) string { return fmt.Sprintf("%d:%02d", s/60, s%60) },
		"parties":  func() []string { return []string{callrelay.PartyCaller, callrelay.PartyCallee} },
		"held": func(c *callrelay.Call, party string) bool {
			if party == callrelay.PartyCallee {
				return c.Hold.Callee
			}
			return c.Hold.Caller
		},
		"statuses": func() []string { return callStatuses },
		"vmstatuses": func() []string {
			return []string{callrelay.VoicemailNew, callrelay.VoicemailHandled, callrelay.VoicemailDeleted}
		},
		"detail": func(d map[string]any) string {
			keys := make([]string, 0, len(d))
			for k := range d {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			parts := make([]string, len(keys))
			for i, k := range keys {
				parts[i] = fmt.Sprintf("%s=%v", k, d[k])
			}
			return strings.Join(parts, " ")
		},
		"caller": func(vm *callrelay.Voicemail) string {
			s := phone.Show(vm.From, vm.Number).Text
			if vm.CallerName != nil && *vm.CallerName != "" && !phone.IsWithheld(*vm.CallerName) {
				s = phone.Clean(*vm.CallerName, 64) + ", " + s
			}
			return s
		},
		"missedCaller": func(mc *callrelay.MissedCall) string {
			s := phone.Show(mc.From, mc.Number).Text
			if mc.CallerName != "" {
				s = mc.CallerName + ", " + s
			}
			return s
		},
		"transcript": func(vm *callrelay.Voicemail) string {
			if vm.Transcript != nil && strings.TrimSpace(*vm.Transcript) != "" {
				return *vm.Transcript
			}
			return "No transcript: " + callrelay.TranscriptReason(vm.TranscriptStatus)
		},
		"fld": func(p consolePage, name, label, typ, _ string) formField {
			return formField{Name: name, Label: label, Type: typ, Value: p.Form.Get(name), Err: p.FieldErrors[name]}
		},
		"sel": func(p consolePage, name, label string, options ...string) formField {
			return formField{Name: name, Label: label, Value: p.Form.Get(name), Err: p.FieldErrors[name], Options: options}
		},
	}
	pages, err := fs.Glob(consoleFiles, "console/templates/*.html")
	if err != nil {
		panic(err)
	}
	for _, p := range pages {
		name := strings.TrimSuffix(p[len("console/templates/"):], ".html")
		if name == "layout" || name == "partials" {
			continue
		}
		t.pages[name] = template.Must(template.New(name).Funcs(funcs).ParseFS(consoleFiles,
			"console/templates/layout.html", "console/templates/partials.html", p))
	}
	return t
}

// formField is one input of the routing form.
type formField struct {
	Name, Label, Type, Value, Err string
	Options                       []string
}

// render writes a whole page with status.
func (t *consoleTemplates) render(w http.ResponseWriter, r *http.Request, status int, name string, p consolePage) {
	var buf bytes.Buffer
	if err := t.pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		logger(r.Context()).Error("console: render", slog.String("page", name), slog.String("error", err.Error()))
		http.Error(w, "The page could not be rendered.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fragment renders one partial ("call", "vm", "timeline") alone.
func (t *consoleTemplates) fragment(name string, data any) (string, error) {
	var buf bytes.Buffer
	if err := t.pages["live"].ExecuteTemplate(&buf, name, data); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// feedMessage is one change sent to the browsers: the fragment with id is replaced by html.
type feedMessage struct {
	Kind string `json:"kind"` // call, timeline, vm; resync: too many changes, read the page afresh
	ID   string `json:"id"`
	Live bool   `json:"live,omitempty"`
	HTML string `json:"html"`
}

func (m feedMessage) encode() []byte {
	b, _ := json.Marshal(m) // strings only: cannot fail
	return b
}

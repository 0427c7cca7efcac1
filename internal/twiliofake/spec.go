package twiliofake

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"

	twiliospec "github.com/callrelay/callrelay/third_party/twilio"
)

// SpecEnv names the environment variable that points DefaultSpec at another copy of the spec
// file; unset, DefaultSpec reads the copy embedded from third_party/twilio.
const SpecEnv = "TWILIO_OPENAPI"

// Spec is the part of Twilio's OpenAPI 3 document for the 2010-04-01 API that the fake needs to
// route and validate requests: every operation's path template, parameters and form-encoded
// request body schema. It is read-only after LoadSpec and safe for concurrent use.
type Spec struct {
	ops       map[string]*Operation // by operationId
	templates []*template
}

// Operation is one operation of the spec (an HTTP method on a path template).
type Operation struct {
	ID     string // operationId, e.g. "UpdateParticipant"
	Method string // upper case, e.g. "POST"
	Path   string // the template, e.g. "/2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json"

	path  []*pathParam // in spec order
	query *formSpec    // query parameters (none: empty, not nil)
	body  *formSpec    // nil when the operation takes no request body
}

// pathParam is a parameter in the path template.
type pathParam struct {
	name   string
	schema *schema
}

// formSpec describes a set of form fields: an application/x-www-form-urlencoded body, or the
// query parameters (which are form-encoded too).
type formSpec struct {
	contentTypes []string // a body's media types
	fields       map[string]*field
	required     []string // in spec order
}

// field is one property of a form body, or one query parameter.
type field struct {
	name    string
	schema  *schema
	explode bool // arrays: one form field per item (style form, explode true)
}

// schema is the subset of JSON Schema the fake enforces on form and path values.
type schema struct {
	typ, format          string
	enum                 []string
	pattern              *regexp.Regexp
	minLength, maxLength *int
	minimum, maximum     *float64
	items                *schema
	// ignoreFormat is Twilio's x-twilio.ignoreFormat: the spec says Twilio does not enforce
	// the format (MediaUrl items), so neither does the fake.
	ignoreFormat bool
}

// template is a path template split into segments, with its operations by method.
type template struct {
	path string
	segs []tseg
	ops  map[string]*Operation
}

// tseg is one segment of a template: a literal ("Calls"), or a parameter with an optional
// literal prefix and suffix ("{Sid}.json").
type tseg struct {
	prefix, param, suffix string // param == "": a literal segment equal to prefix
}

// Operation returns the operation with this operationId.
func (s *Spec) Operation(id string) (*Operation, bool) {
	op, ok := s.ops[id]
	return op, ok
}

// Match maps a request to its operation. path is the request's path, escaped as on the wire
// (r.URL.EscapedPath()) or not: each segment is unescaped on its own, so a label with %2F stays
// one segment. Where templates overlap, literal segments win over parameters, left to right
// (".../Calls/FeedbackSummary.json" is not a call SID). ok is false when no template matches
// the path or the best template has no operation for method.
func (s *Spec) Match(method, path string) (op *Operation, pathParams map[string]string, ok bool) {
	t, params := s.matchPath(path)
	if t == nil {
		return nil, nil, false
	}
	op = t.ops[strings.ToUpper(method)]
	if op == nil {
		return nil, nil, false
	}
	return op, params, true
}

// matchPath returns the most specific template matching path (nil if none) and the path
// parameters it binds.
func (s *Spec) matchPath(path string) (*template, map[string]string) {
	segs := strings.Split(path, "/")
	var best *template
	var bestParams map[string]string
	for _, t := range s.templates {
		if len(t.segs) != len(segs) {
			continue
		}
		params, ok := t.match(segs)
		if !ok {
			continue
		}
		if best == nil || t.moreSpecific(best) {
			best, bestParams = t, params
		}
	}
	return best, bestParams
}

func (t *template) match(segs []string) (map[string]string, bool) {
	params := map[string]string{}
	for i, ts := range t.segs {
		seg := segs[i]
		if ts.param == "" {
			if unescape(seg) != ts.prefix {
				return nil, false
			}
			continue
		}
		if len(seg) <= len(ts.prefix)+len(ts.suffix) || !strings.HasPrefix(seg, ts.prefix) || !strings.HasSuffix(seg, ts.suffix) {
			return nil, false
		}
		params[ts.param] = unescape(seg[len(ts.prefix) : len(seg)-len(ts.suffix)])
	}
	return params, true
}

// moreSpecific reports whether t beats u (same length, both matching): at the first segment
// where one is literal and the other a parameter, the literal wins.
func (t *template) moreSpecific(u *template) bool {
	for i := range t.segs {
		tl, ul := t.segs[i].param == "", u.segs[i].param == ""
		if tl != ul {
			return tl
		}
	}
	return false
}

// unescape percent-decodes one path segment, leaving it as is if it is not valid escaping.
func unescape(seg string) string {
	if u, err := url.PathUnescape(seg); err == nil {
		return u
	}
	return seg
}

var defaultSpec struct {
	once sync.Once
	spec *Spec
	err  error
}

// DefaultSpec loads the spec once per process (every Fake of a test binary shares it): the file
// $TWILIO_OPENAPI names if set, else the copy vendored in third_party/twilio.
func DefaultSpec() (*Spec, error) {
	defaultSpec.once.Do(func() { defaultSpec.spec, defaultSpec.err = loadDefaultSpec() })
	return defaultSpec.spec, defaultSpec.err
}

func loadDefaultSpec() (*Spec, error) {
	if p := os.Getenv(SpecEnv); p != "" {
		s, err := LoadSpec(p)
		if err != nil {
			return nil, fmt.Errorf("$%s: %w", SpecEnv, err)
		}
		return s, nil
	}
	return ParseSpec(twiliospec.OpenAPI)
}

// The JSON shapes LoadSpec decodes: only what validation needs, the rest of the 1.2 MB
// (descriptions, examples, responses) is skipped by encoding/json.
type (
	rawDoc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	rawOperation struct {
		OperationID string         `json:"operationId"`
		Parameters  []rawParameter `json:"parameters"`
		RequestBody *struct {
			Content map[string]struct {
				Schema   rawSchema `json:"schema"`
				Encoding map[string]struct {
					Style   string `json:"style"`
					Explode *bool  `json:"explode"`
				} `json:"encoding"`
			} `json:"content"`
		} `json:"requestBody"`
	}
	rawParameter struct {
		Ref      string    `json:"$ref"`
		Name     string    `json:"name"`
		In       string    `json:"in"`
		Required bool      `json:"required"`
		Schema   rawSchema `json:"schema"`
	}
	rawSchema struct {
		Ref        string               `json:"$ref"`
		Type       string               `json:"type"`
		Format     string               `json:"format"`
		Enum       []json.RawMessage    `json:"enum"`
		Pattern    string               `json:"pattern"`
		MinLength  *int                 `json:"minLength"`
		MaxLength  *int                 `json:"maxLength"`
		Minimum    *float64             `json:"minimum"`
		Maximum    *float64             `json:"maximum"`
		Items      *rawSchema           `json:"items"`
		Properties map[string]rawSchema `json:"properties"`
		Required   []string             `json:"required"`
		XTwilio    struct {
			IgnoreFormat bool `json:"ignoreFormat"`
		} `json:"x-twilio"`
	}
)

const formContentType = "application/x-www-form-urlencoded"

var httpMethods = map[string]bool{"get": true, "put": true, "post": true, "delete": true, "options": true, "head": true, "patch": true, "trace": true}

// LoadSpec parses the OpenAPI 3 JSON file at path.
func LoadSpec(path string) (*Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("loading the Twilio OpenAPI spec: %w", err)
	}
	s, err := parseSpec(data)
	if err != nil {
		return nil, fmt.Errorf("loading the Twilio OpenAPI spec %s: %w", path, err)
	}
	return s, nil
}

// ParseSpec parses an OpenAPI 3 JSON document.
func ParseSpec(data []byte) (*Spec, error) {
	s, err := parseSpec(data)
	if err != nil {
		return nil, fmt.Errorf("parsing the Twilio OpenAPI spec: %w", err)
	}
	return s, nil
}

func parseSpec(data []byte) (*Spec, error) {
	var doc rawDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("decoding JSON: %w", err)
	}
	if len(doc.Paths) == 0 {
		return nil, errors.New("no paths")
	}
	r := &resolver{schemas: doc.Components.Schemas, done: map[string]*schema{}}
	s := &Spec{ops: map[string]*Operation{}}
	paths := make([]string, 0, len(doc.Paths))
	for p := range doc.Paths {
		paths = append(paths, p)
	}
	sort.Strings(paths) // deterministic errors and template order
	for _, p := range paths {
		t, err := newTemplate(p)
		if err != nil {
			return nil, err
		}
		item := doc.Paths[p]
		var shared []rawParameter
		if raw, ok := item["parameters"]; ok {
			if err := json.Unmarshal(raw, &shared); err != nil {
				return nil, fmt.Errorf("%s: parameters: %w", p, err)
			}
		}
		for key, raw := range item {
			if !httpMethods[key] {
				continue // servers, description, x-twilio
			}
			op, err := r.operation(p, strings.ToUpper(key), raw, shared)
			if err != nil {
				return nil, err
			}
			if _, dup := s.ops[op.ID]; dup {
				return nil, fmt.Errorf("operationId %s used twice", op.ID)
			}
			s.ops[op.ID] = op
			t.ops[op.Method] = op
		}
		s.templates = append(s.templates, t)
	}
	return s, nil
}

func newTemplate(p string) (*template, error) {
	t := &template{path: p, ops: map[string]*Operation{}}
	for _, seg := range strings.Split(p, "/") {
		open := strings.IndexByte(seg, '{')
		if open < 0 {
			t.segs = append(t.segs, tseg{prefix: seg})
			continue
		}
		closing := strings.IndexByte(seg, '}')
		if closing < open || strings.Count(seg, "{") != 1 {
			return nil, fmt.Errorf("path %s: unsupported segment %q", p, seg)
		}
		t.segs = append(t.segs, tseg{prefix: seg[:open], param: seg[open+1 : closing], suffix: seg[closing+1:]})
	}
	return t, nil
}

// resolver turns raw schemas into schemas, following $refs into components.schemas.
type resolver struct {
	schemas map[string]json.RawMessage
	done    map[string]*schema
}

func (r *resolver) operation(path, method string, raw json.RawMessage, shared []rawParameter) (*Operation, error) {
	var ro rawOperation
	if err := json.Unmarshal(raw, &ro); err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if ro.OperationID == "" {
		return nil, fmt.Errorf("%s %s: no operationId", method, path)
	}
	op := &Operation{ID: ro.OperationID, Method: method, Path: path, query: &formSpec{fields: map[string]*field{}}}
	where := func(err error) error { return fmt.Errorf("%s (%s %s): %w", op.ID, method, path, err) }

	// Operation parameters override path-level ones of the same name and location.
	all := append([]rawParameter{}, ro.Parameters...)
	for _, sp := range shared {
		overridden := false
		for _, p := range ro.Parameters {
			overridden = overridden || (p.Name == sp.Name && p.In == sp.In)
		}
		if !overridden {
			all = append(all, sp)
		}
	}
	for _, rp := range all {
		if rp.Ref != "" {
			return nil, where(fmt.Errorf("parameter $ref %s not supported", rp.Ref))
		}
		if rp.In != "path" && rp.In != "query" {
			continue // header and cookie parameters: none in this spec
		}
		sc, err := r.schema(&rp.Schema, 0)
		if err != nil {
			return nil, where(fmt.Errorf("parameter %s: %w", rp.Name, err))
		}
		if rp.In == "path" {
			op.path = append(op.path, &pathParam{name: rp.Name, schema: sc})
			continue
		}
		op.query.fields[rp.Name] = &field{name: rp.Name, schema: sc, explode: true} // OpenAPI's default for query
		if rp.Required {
			op.query.required = append(op.query.required, rp.Name)
		}
	}

	if ro.RequestBody != nil {
		media, ok := ro.RequestBody.Content[formContentType]
		if !ok {
			return nil, where(errors.New("request body is not application/x-www-form-urlencoded"))
		}
		body := &formSpec{fields: map[string]*field{}}
		for ct := range ro.RequestBody.Content {
			body.contentTypes = append(body.contentTypes, ct)
		}
		sort.Strings(body.contentTypes)
		obj := media.Schema
		if obj.Ref != "" {
			sc, err := r.raw(obj.Ref)
			if err != nil {
				return nil, where(err)
			}
			obj = *sc
		}
		for name, prop := range obj.Properties {
			sc, err := r.schema(&prop, 0)
			if err != nil {
				return nil, where(fmt.Errorf("body field %s: %w", name, err))
			}
			f := &field{name: name, schema: sc, explode: true} // OpenAPI's default for form bodies
			if enc, ok := media.Encoding[name]; ok {
				if enc.Style != "" && enc.Style != "form" {
					return nil, where(fmt.Errorf("body field %s: encoding style %q not supported", name, enc.Style))
				}
				if enc.Explode != nil {
					f.explode = *enc.Explode
				}
			}
			body.fields[name] = f
		}
		for _, name := range obj.Required {
			if body.fields[name] == nil {
				return nil, where(fmt.Errorf("required body field %s has no schema", name))
			}
			body.required = append(body.required, name)
		}
		op.body = body
	}
	return op, nil
}

// raw returns the component schema a $ref names.
func (r *resolver) raw(ref string) (*rawSchema, error) {
	name, ok := strings.CutPrefix(ref, "#/components/schemas/")
	if !ok {
		return nil, fmt.Errorf("$ref %s: only #/components/schemas/ refs are supported", ref)
	}
	data, ok := r.schemas[name]
	if !ok {
		return nil, fmt.Errorf("$ref %s: no such schema", ref)
	}
	var rs rawSchema
	if err := json.Unmarshal(data, &rs); err != nil {
		return nil, fmt.Errorf("$ref %s: %w", ref, err)
	}
	return &rs, nil
}

func (r *resolver) schema(rs *rawSchema, depth int) (*schema, error) {
	if depth > 16 {
		return nil, errors.New("schema nesting too deep (a $ref cycle?)")
	}
	if rs.Ref != "" {
		if sc, ok := r.done[rs.Ref]; ok {
			return sc, nil
		}
		target, err := r.raw(rs.Ref)
		if err != nil {
			return nil, err
		}
		sc, err := r.schema(target, depth+1)
		if err != nil {
			return nil, err
		}
		r.done[rs.Ref] = sc
		return sc, nil
	}
	sc := &schema{
		typ: rs.Type, format: rs.Format,
		minLength: rs.MinLength, maxLength: rs.MaxLength,
		minimum: rs.Minimum, maximum: rs.Maximum,
		ignoreFormat: rs.XTwilio.IgnoreFormat,
	}
	for _, e := range rs.Enum {
		var str string
		if err := json.Unmarshal(e, &str); err == nil {
			sc.enum = append(sc.enum, str)
		} else {
			sc.enum = append(sc.enum, string(e)) // numbers and booleans as written
		}
	}
	if rs.Pattern != "" {
		re, err := regexp.Compile(rs.Pattern)
		if err != nil {
			return nil, fmt.Errorf("pattern %q: %w", rs.Pattern, err)
		}
		sc.pattern = re
	}
	if rs.Items != nil {
		items, err := r.schema(rs.Items, depth+1)
		if err != nil {
			return nil, fmt.Errorf("items: %w", err)
		}
		sc.items = items
	}
	return sc, nil
}

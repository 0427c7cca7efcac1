package twiliofake

import (
	"fmt"
	"math"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Twilio error codes the fake answers with a violation. Twilio's real codes for a bad value
// vary by field and are not in the spec; these are the documented generic ones.
const (
	// CodeInvalidParameter (400) is what Twilio's APIs answer for a missing or invalid
	// parameter ("Missing required parameter X in the post body"). Its dictionary entry is
	// "Unknown parameters", which is also why an unknown field gets it.
	CodeInvalidParameter = 20001
	// CodeInvalidURL (400) is "Invalid URL": Twilio wants a fully qualified URL, with
	// protocol and hostname.
	CodeInvalidURL = 21205
)

// Keywords of a Violation: the JSON Schema keyword broken, or what else was wrong.
const (
	KeywordRequired    = "required"     // a required parameter or field is missing
	KeywordUnknown     = "unknown"      // a field the operation does not have
	KeywordDuplicate   = "duplicate"    // a scalar field given more than once
	KeywordType        = "type"         // not a boolean / integer / number
	KeywordEnum        = "enum"         // not one of the allowed values
	KeywordPattern     = "pattern"      // does not match the schema's pattern
	KeywordFormat      = "format"       // not a uri / date / date-time
	KeywordMinLength   = "minLength"    // too short
	KeywordMaxLength   = "maxLength"    // too long
	KeywordMinimum     = "minimum"      // too small
	KeywordMaximum     = "maximum"      // too large
	KeywordContentType = "content-type" // the body is not form-encoded
	KeywordAuth        = "auth"         // missing or wrong credentials, or another account
	KeywordPath        = "path"         // no operation has this path
	KeywordMethod      = "method"       // the path has no operation for this method
	KeywordTwilio      = "twilio"       // a rule Twilio documents outside the schema
)

// Violation is one way a request breaks Twilio's contract: a request real Twilio would refuse
// (or, for an unknown or repeated field, silently misread).
type Violation struct {
	Operation string // operationId; "" when no operation matched
	In        string // "path", "query", "body", "header" or "request"
	Field     string // the parameter, field or header, e.g. "Hold"
	Value     string // the offending value; "" when missing
	Keyword   string // one of the Keyword constants
	Rule      string // the rule broken, readable, e.g. `must be "true" or "false" (boolean)`
	Code      int    // the Twilio error code answered
}

// Error describes the violation, e.g.
// `UpdateParticipant: body field Hold="yes": must be "true" or "false" (boolean)`.
func (v Violation) Error() string {
	var b strings.Builder
	if v.Operation != "" {
		b.WriteString(v.Operation + ": ")
	}
	b.WriteString(v.In)
	if v.Field != "" {
		if v.In == "body" {
			b.WriteString(" field")
		}
		b.WriteString(" " + v.Field)
		if v.Value != "" {
			b.WriteString("=" + strconv.Quote(v.Value))
		}
	} else if v.Value != "" {
		b.WriteString(" " + strconv.Quote(v.Value))
	}
	b.WriteString(": " + v.Rule)
	return b.String()
}

// message is the violation as Twilio words its errors: "<field>: <rule>".
func (v Violation) message() string {
	if v.Field == "" {
		return v.Rule
	}
	return v.Field + ": " + v.Rule
}

// Validate checks a request's path parameters and form against the operation's schema.
// form is the request body when the operation takes one, else the query string. It reports
// path parameters that break their schema, required fields missing, fields the operation does
// not have, scalar fields given more than once, and values that break their schema (type,
// enum, pattern, length, range, format uri/date/date-time). The result is ordered: path, then
// missing fields, then fields by name.
func (op *Operation) Validate(pathParams map[string]string, form url.Values) []Violation {
	var vs []Violation
	add := func(in, name, value, keyword, rule string) {
		vs = append(vs, Violation{Operation: op.ID, In: in, Field: name, Value: value, Keyword: keyword, Rule: rule, Code: CodeInvalidParameter})
	}
	addFail := func(in, name, value string, f ruleFailure) {
		vs = append(vs, Violation{Operation: op.ID, In: in, Field: name, Value: value, Keyword: f.keyword, Rule: f.rule, Code: f.code})
	}
	for _, p := range op.path {
		v := pathParams[p.name]
		if v == "" {
			add("path", p.name, "", KeywordRequired, "is required")
			continue
		}
		if f := p.schema.check(v); f.keyword != "" {
			addFail("path", p.name, v, f)
		}
	}

	fs, in := op.query, "query"
	if op.body != nil {
		fs, in = op.body, "body"
	}
	for _, name := range fs.required {
		if len(form[name]) == 0 {
			add(in, name, "", KeywordRequired, "is required")
		}
	}
	names := make([]string, 0, len(form))
	for name := range form {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		values := form[name]
		f := fs.fields[name]
		if f == nil {
			add(in, name, strings.Join(values, ","), KeywordUnknown, fmt.Sprintf("is not a parameter of %s", op.ID))
			continue
		}
		if f.schema.typ == "array" {
			items := values
			if !f.explode && len(values) == 1 {
				items = strings.Split(values[0], ",")
			}
			if !f.explode && len(values) > 1 {
				add(in, name, strings.Join(values, ","), KeywordDuplicate, fmt.Sprintf("given %d times; this array is one comma-separated field (explode: false)", len(values)))
				continue
			}
			if f.schema.items == nil {
				continue
			}
			for _, item := range items {
				if fail := f.schema.items.check(item); fail.keyword != "" {
					fail.rule = "each item " + fail.rule
					addFail(in, name, item, fail)
				}
			}
			continue
		}
		if len(values) > 1 {
			add(in, name, strings.Join(values, ","), KeywordDuplicate, fmt.Sprintf("given %d times; only array fields may repeat", len(values)))
			continue
		}
		if fail := f.schema.check(values[0]); fail.keyword != "" {
			addFail(in, name, values[0], fail)
		}
	}
	return vs
}

// ruleFailure is a schema keyword a value breaks, the rule in words, and the Twilio code.
type ruleFailure struct {
	keyword, rule string
	code          int
}

// check returns the first schema keyword v breaks (keyword "" when v is valid).
func (s *schema) check(v string) ruleFailure {
	fail := func(keyword, rule string) ruleFailure {
		return ruleFailure{keyword: keyword, rule: rule, code: CodeInvalidParameter}
	}
	var num float64
	isNum := false
	switch s.typ {
	case "boolean":
		// Form values are strings: Prism (and Twilio's own libraries) accept exactly these.
		if v != "true" && v != "false" {
			return fail(KeywordType, `must be "true" or "false" (boolean)`)
		}
	case "integer":
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fail(KeywordType, "must be an integer")
		}
		num, isNum = float64(n), true
	case "number":
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return fail(KeywordType, "must be a number")
		}
		num, isNum = f, true
	}
	if len(s.enum) > 0 && !slices.Contains(s.enum, v) {
		quoted := make([]string, len(s.enum))
		for i, e := range s.enum {
			quoted[i] = strconv.Quote(e)
		}
		return fail(KeywordEnum, "must be one of "+strings.Join(quoted, ", "))
	}
	if s.pattern != nil && !s.pattern.MatchString(v) {
		return fail(KeywordPattern, "must match "+s.pattern.String())
	}
	if n := utf8.RuneCountInString(v); s.minLength != nil && n < *s.minLength {
		return fail(KeywordMinLength, fmt.Sprintf("must be at least %d characters long", *s.minLength))
	} else if s.maxLength != nil && n > *s.maxLength {
		return fail(KeywordMaxLength, fmt.Sprintf("must be at most %d characters long", *s.maxLength))
	}
	if isNum && s.minimum != nil && num < *s.minimum {
		return fail(KeywordMinimum, "must be >= "+strconv.FormatFloat(*s.minimum, 'g', -1, 64))
	}
	if isNum && s.maximum != nil && num > *s.maximum {
		return fail(KeywordMaximum, "must be <= "+strconv.FormatFloat(*s.maximum, 'g', -1, 64))
	}
	if s.ignoreFormat || (s.typ != "string" && s.typ != "") {
		return ruleFailure{}
	}
	// Formats Prism enforces. The others in the spec (phone-number, endpoint, http-method,
	// twiml, iso-country-code) are Twilio's own names that carry no rule of their own.
	switch s.format {
	case "uri":
		if !isAbsoluteURI(v) {
			return ruleFailure{KeywordFormat, "must be an absolute URI, with scheme and host (format uri)", CodeInvalidURL}
		}
	case "date":
		if _, err := time.Parse(time.DateOnly, v); err != nil {
			return fail(KeywordFormat, "must be a date, YYYY-MM-DD (format date)")
		}
	case "date-time":
		if _, err := time.Parse(time.RFC3339, v); err != nil {
			return fail(KeywordFormat, "must be an RFC 3339 date-time with a time zone (format date-time)")
		}
	}
	return ruleFailure{}
}

// isAbsoluteURI reports whether v is a URI as Twilio wants its webhook URLs: only characters
// RFC 3986 allows (Prism's check rejects "http://a/b c" too), a scheme, and a host. Prism's
// "uri" format alone would also take "mailto:x" and "http://"; Twilio documents 21205 for a
// URL without protocol and hostname, so the fake demands both.
func isAbsoluteURI(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '%':
			if i+2 >= len(v) || !isHex(v[i+1]) || !isHex(v[i+2]) {
				return false
			}
			i += 2
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~:/?#[]@!$&'()*+,;=", c) >= 0:
		default:
			return false
		}
	}
	u, err := url.Parse(v)
	return err == nil && u.Scheme != "" && u.Hostname() != ""
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

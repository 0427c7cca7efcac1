package callrelay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Modes, ring strategies and caller-ID choices of a routing.
const (
	ModeDirect     = "direct"
	ModeConference = "conference"

	RingSimultaneous = "simultaneous"
	RingSequential   = "sequential"

	CallerIDCaller = "caller"
	CallerIDNumber = "number"

	TargetPhone  = "phone"
	TargetSIP    = "sip"
	TargetClient = "client"

	// Screens: what the person reached hears before being bridged (docs/design.md "Screening").
	ScreenPress    = "press"    // who is calling, and press 1 to accept: a carrier voicemail never does
	ScreenAnnounce = "announce" // a whisper of who is calling, then bridged without a key
	ScreenOff      = "off"      // bridged as soon as the leg answers
)

// MaxLabelLength bounds a number's label: it is spoken to the callee before every call.
const MaxLabelLength = 64

// Defaults for fields a PUT leaves out (docs/design.md).
const (
	DefaultTimeoutSeconds   = 20
	DefaultLanguage         = "en-US"
	DefaultMaxLengthSeconds = 120
	// DefaultTranscribedMaxLengthSeconds is the default max_length_seconds when transcribe is
	// on: Twilio transcribes only recordings longer than 2 s and shorter than 120 s (its
	// warning 13617), and a recording stopped at maxLength can report a second or two more
	// than maxLength, so a message that runs to the limit stays transcribable.
	DefaultTranscribedMaxLengthSeconds = 115
	DefaultVoicemailPrompt             = "Please leave a message after the beep."
	MaxTargets                         = 10
	maxSIPURILen                       = 255
	maxSIPHeadersLen                   = 1024
	maxSayLen                          = 4096 // Twilio's limit for one <Say>
	maxVoicemailLengthSecond           = 3600
	maxEmailLen                        = 254 // RFC 5321's 256-octet path, less its angle brackets
	maxLanguageLen                     = 35  // RFC 5646 §4.4.1: the length a tag must be kept to
	maxSIPCredentialLen                = 128
	maxQuoted                          = 64 // how much of a refused value an error message repeats
)

// SIPRegions are Twilio's edge regions a SIP target may name.
var SIPRegions = []string{"us1", "us2", "ie1", "de1", "sg1", "jp1", "br1", "au1"}

// Number is a masked number and how calls to it are routed.
type Number struct {
	Number    string    `json:"number"`
	Routing   Routing   `json:"routing"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Routing is the body of PUT /api/numbers/{number}, with defaults applied.
type Routing struct {
	OwnerEmail     string `json:"owner_email"`
	Mode           string `json:"mode"`
	Ring           string `json:"ring"`
	TimeoutSeconds int    `json:"timeout_seconds"`
	CallerID       string `json:"caller_id"`
	Greeting       string `json:"greeting,omitempty"`
	Language       string `json:"language"`
	Voice          string `json:"voice,omitempty"`
	// Label names the masked line in the screen ("Sales line"); without one the number is
	// read digit by digit.
	Label string `json:"label,omitempty"`
	// MachineDetection asks Twilio's answering-machine detection on phone legs: a leg answered
	// by a machine is hung up before it hears the screen.
	MachineDetection bool              `json:"machine_detection"`
	Targets          []Target          `json:"targets"`
	Voicemail        VoicemailSettings `json:"voicemail"`
	Enabled          bool              `json:"enabled"`
	// TimeZone is the IANA zone the owner reads times in (emails); empty: the instance's
	// CALLRELAY_TIME_ZONE.
	TimeZone string `json:"time_zone,omitempty"`
	// Schedule, AfterHours and Callers: business hours and caller policies (schedule.go).
	Schedule   *Schedule     `json:"schedule,omitempty"`
	AfterHours *AfterHours   `json:"after_hours,omitempty"`
	Callers    *CallerPolicy `json:"callers,omitempty"`
	// GreetingURL is a recording played (<Play>) instead of saying Greeting (audio.go).
	GreetingURL string `json:"greeting_url,omitempty"`
	// Notify: nil in routings stored before it existed, read as the defaults (notify.go).
	Notify *NotifySettings `json:"notify,omitempty"`
}

// Target is one endpoint a call is forwarded to.
type Target struct {
	Type      string            `json:"type"`
	To        string            `json:"to,omitempty"`
	URI       string            `json:"uri,omitempty"`
	Username  string            `json:"username,omitempty"`
	Password  string            `json:"password,omitempty"`
	Headers   map[string]string `json:"headers,omitempty"`
	Transport string            `json:"transport,omitempty"`
	Region    string            `json:"region,omitempty"`
	Identity  string            `json:"identity,omitempty"`
	// Screen is ScreenPress, ScreenAnnounce or ScreenOff; DecodeRouting defaults it by type.
	// Empty (a routing stored before screening existed) is ScreenOff: see Screening.
	Screen string `json:"screen,omitempty"`
}

// Screening returns the target's screen, ScreenOff when none is set.
func (t Target) Screening() string {
	if t.Screen == "" {
		return ScreenOff
	}
	return t.Screen
}

// ScreensTarget reports whether target i's leg runs callrelay's screen before it is bridged:
// it has a screen, or it is a phone and the number asks for machine detection (whose result
// the screen reads).
func (r Routing) ScreensTarget(i int) bool {
	if i < 0 || i >= len(r.Targets) {
		return false
	}
	t := r.Targets[i]
	return t.Screening() != ScreenOff || (r.MachineDetection && t.Type == TargetPhone)
}

// DefaultScreen is the screen of a target that does not set one: a phone can be answered by
// its carrier's voicemail, a SIP endpoint or a browser client cannot.
func DefaultScreen(targetType string) string {
	if targetType == TargetPhone {
		return ScreenPress
	}
	return ScreenOff
}

// VoicemailSettings say what happens when nobody answers.
type VoicemailSettings struct {
	Enabled          bool   `json:"enabled"`
	Prompt           string `json:"prompt,omitempty"`
	MaxLengthSeconds int    `json:"max_length_seconds"`
	Transcribe       bool   `json:"transcribe"`
	// PromptURL is a recording played instead of saying Prompt (audio.go).
	PromptURL string `json:"prompt_url,omitempty"`
	// Recordings (internal/callrelay/recordings.go): the format callrelay copies the audio in
	// ("mp3" or "wav"; empty: mp3), whether Twilio's copy is deleted once callrelay's is
	// verified (nil: true), and how many days the audio and transcript are kept (nil: the
	// instance's CALLRELAY_RETENTION_DAYS; 0: forever).
	Format         string `json:"format,omitempty"`
	DeleteAtTwilio *bool  `json:"delete_at_twilio,omitempty"`
	RetentionDays  *int   `json:"retention_days,omitempty"`
}

// Redacted returns a copy of r without secrets, for API answers.
func (r Routing) Redacted() Routing {
	out := r
	out.Targets = make([]Target, len(r.Targets))
	for i, t := range r.Targets {
		t.Password = ""
		out.Targets[i] = t
	}
	if a := r.AfterHours; a != nil {
		ah := *a
		ah.Targets = make([]Target, len(a.Targets))
		for i, t := range a.Targets {
			t.Password = ""
			ah.Targets[i] = t
		}
		out.AfterHours = &ah
	}
	return out
}

// TranscriptionPossible reports whether Twilio can transcribe this number's voicemail at all:
// it transcribes American English only.
func (r Routing) TranscriptionPossible() bool {
	return r.Voicemail.Transcribe && r.Language == "en-US"
}

// VoicemailPrompt returns the prompt spoken before the beep.
func (r Routing) VoicemailPrompt() string {
	if r.Voicemail.Prompt != "" {
		return r.Voicemail.Prompt
	}
	return DefaultVoicemailPrompt
}

// String returns how a target is shown on a call's legs: the number, SIP URI or client:identity.
func (t Target) String() string {
	switch t.Type {
	case TargetPhone:
		return t.To
	case TargetSIP:
		return t.URI
	case TargetClient:
		return "client:" + t.Identity
	}
	return ""
}

// SIPURI returns the URI written in <Sip>: transport and region as URI parameters before the
// '?', headers after it with their values percent-escaped, in a stable order.
func (t Target) SIPURI() string {
	var b strings.Builder
	b.WriteString(t.URI)
	if t.Transport != "" {
		b.WriteString(";transport=")
		b.WriteString(t.Transport)
	}
	if t.Region != "" {
		b.WriteString(";region=")
		b.WriteString(t.Region)
	}
	names := make([]string, 0, len(t.Headers))
	for name := range t.Headers {
		names = append(names, name)
	}
	sort.Strings(names)
	for i, name := range names {
		if i == 0 {
			b.WriteByte('?')
		} else {
			b.WriteByte('&')
		}
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(escapeSIPHeaderValue(t.Headers[name]))
	}
	return b.String()
}

// escapeSIPHeaderValue percent-escapes a header value for a SIP URI. RFC 3261 reads '+' in a
// header value as a plus, not a space, so a space is written %20, never '+'.
func escapeSIPHeaderValue(v string) string {
	return strings.ReplaceAll(url.QueryEscape(v), "+", "%20")
}

// routingInput mirrors Routing with pointers, so that a field left out can be told from a
// zero value and get its default.
type routingInput struct {
	OwnerEmail       *string         `json:"owner_email"`
	Mode             *string         `json:"mode"`
	Ring             *string         `json:"ring"`
	TimeoutSeconds   *int            `json:"timeout_seconds"`
	CallerID         *string         `json:"caller_id"`
	Greeting         *string         `json:"greeting"`
	Language         *string         `json:"language"`
	Voice            *string         `json:"voice"`
	Label            *string         `json:"label"`
	MachineDetection *bool           `json:"machine_detection"`
	Targets          []Target        `json:"targets"`
	Voicemail        *voicemailInput `json:"voicemail"`
	Enabled          *bool           `json:"enabled"`
	TimeZone         *string         `json:"time_zone"`
	Schedule         *Schedule       `json:"schedule"`
	AfterHours       *AfterHours     `json:"after_hours"`
	Callers          *CallerPolicy   `json:"callers"`
	GreetingURL      *string         `json:"greeting_url"`
	Notify           *notifyInput    `json:"notify"`
}

type voicemailInput struct {
	Enabled          *bool   `json:"enabled"`
	Prompt           *string `json:"prompt"`
	MaxLengthSeconds *int    `json:"max_length_seconds"`
	Transcribe       *bool   `json:"transcribe"`
	PromptURL        *string `json:"prompt_url"`
	Format           *string `json:"format"`
	DeleteAtTwilio   *bool   `json:"delete_at_twilio"`
	RetentionDays    *int    `json:"retention_days"`
}

// DecodeRouting reads a routing from JSON, applies docs/design.md's defaults and validates it. Unknown
// fields are refused, so that a typo is not silently ignored.
func DecodeRouting(r io.Reader) (Routing, error) {
	var in routingInput
	if err := DecodeJSON(r, &in); err != nil {
		return Routing{}, err
	}
	rt := Routing{
		OwnerEmail:       deref(in.OwnerEmail, ""),
		Mode:             deref(in.Mode, ModeDirect),
		Ring:             deref(in.Ring, RingSimultaneous),
		TimeoutSeconds:   deref(in.TimeoutSeconds, DefaultTimeoutSeconds),
		CallerID:         deref(in.CallerID, CallerIDCaller),
		Greeting:         deref(in.Greeting, ""),
		Language:         deref(in.Language, DefaultLanguage),
		Voice:            deref(in.Voice, ""),
		Label:            deref(in.Label, ""),
		MachineDetection: deref(in.MachineDetection, false),
		Targets:          in.Targets,
		Enabled:          deref(in.Enabled, true),
		TimeZone:         deref(in.TimeZone, ""),
		Schedule:         in.Schedule,
		AfterHours:       in.AfterHours,
		Callers:          in.Callers,
		GreetingURL:      deref(in.GreetingURL, ""),
		Voicemail: VoicemailSettings{
			Enabled:    true,
			Transcribe: true,
		},
	}
	var maxLength *int
	if vm := in.Voicemail; vm != nil {
		rt.Voicemail = VoicemailSettings{
			Enabled:        deref(vm.Enabled, true),
			Prompt:         deref(vm.Prompt, ""),
			Transcribe:     deref(vm.Transcribe, true),
			PromptURL:      deref(vm.PromptURL, ""),
			Format:         deref(vm.Format, ""),
			DeleteAtTwilio: vm.DeleteAtTwilio,
			RetentionDays:  vm.RetentionDays,
		}
		maxLength = vm.MaxLengthSeconds
	}
	// A message Twilio will transcribe is kept short enough to be; a longer maximum asked for
	// is taken (its longer messages come without a transcript).
	def := DefaultMaxLengthSeconds
	if rt.TranscriptionPossible() {
		def = DefaultTranscribedMaxLengthSeconds
	}
	rt.Voicemail.MaxLengthSeconds = deref(maxLength, def)
	if in.Notify != nil {
		rt.Notify = in.Notify.settings() // left out: nil, read as the defaults
	}
	for i := range rt.Targets {
		if len(rt.Targets[i].Headers) == 0 {
			rt.Targets[i].Headers = nil // "headers": {} is no headers, as it reads back once stored
		}
		if rt.Targets[i].Screen == "" {
			rt.Targets[i].Screen = DefaultScreen(rt.Targets[i].Type)
		}
	}
	rt.applyPolicyDefaults()
	if err := rt.Validate(); err != nil {
		return Routing{}, err
	}
	return rt, nil
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// DecodeJSON reads one JSON object from r into v. Unknown fields and anything after the
// object are refused with a 400 naming the field where the decoder can tell it. So is a body
// that is not UTF-8, which encoding/json would otherwise take, turning the bad bytes into U+FFFD.
func DecodeJSON(r io.Reader, v any) error {
	body, err := io.ReadAll(r)
	if err != nil {
		return Invalidf("", "Cannot read body: %v.", err)
	}
	if !utf8.Valid(body) {
		return Invalidf("", "Body is not valid UTF-8 (offset %d).", invalidUTF8At(body))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	// dec.More() would miss a trailing ']' or '}': only the end of the body may follow.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Invalidf("", "Body must hold one JSON object.")
	}
	return nil
}

// jsonError turns a decoding error into a 400 naming the field where the decoder can tell it.
func jsonError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr) && typeErr.Field == "":
		return Invalidf("", "Body must be a JSON object, not a JSON %s.", typeErr.Value)
	case errors.As(err, &typeErr):
		return Invalidf(typeErr.Field, "Field %q must be a %s, not a JSON %s.", typeErr.Field, typeErr.Type, typeErr.Value)
	case errors.As(err, &syntaxErr):
		return Invalidf("", "Body is not valid JSON (offset %d).", syntaxErr.Offset)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return Invalidf("", "Body must be a JSON object.")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// The name is Go-quoted in the message: "\x7f", "a\"b" are named as sent.
		field := strings.TrimPrefix(err.Error(), "json: unknown field ")
		if name, err := strconv.Unquote(field); err == nil {
			field = name
		}
		return Invalidf(field, "Unknown field %q.", field)
	}
	return Invalidf("", "Body is not valid JSON: %v.", err)
}

var (
	e164Re     = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)
	languageRe = regexp.MustCompile(`^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$`)
	voiceRe    = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	identityRe = regexp.MustCompile(`^[A-Za-z0-9_.@-]{1,121}$`)
	sipUserRe  = regexp.MustCompile(`^[A-Za-z0-9._~!$&'()*+,;=%-]+$`)
	sipHostRe  = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?$`)
	headerRe   = regexp.MustCompile(`^[A-Za-z0-9-]+$`)
)

// sipStandardHeaders are the non-"x-" headers Twilio passes on a SIP INVITE.
var sipStandardHeaders = []string{"User-to-User", "Remote-Party-ID", "P-Preferred-Identity", "P-Called-Party-ID"}

// ValidNumber reports whether s is an E.164 phone number.
func ValidNumber(s string) bool { return e164Re.MatchString(s) }

// Validate checks every rule of docs/design.md and returns the first violation as an EINVALID error
// naming its field.
func (r Routing) Validate() error {
	if r.OwnerEmail == "" {
		return Invalidf("owner_email", "owner_email is required: voicemail is emailed there.")
	}
	if len(r.OwnerEmail) > maxEmailLen {
		return Invalidf("owner_email", "owner_email must be at most %d characters.", maxEmailLen)
	}
	if a, err := mail.ParseAddress(r.OwnerEmail); err != nil || a.Address != r.OwnerEmail {
		return Invalidf("owner_email", "owner_email %s is not an email address.", quoteShort(r.OwnerEmail))
	}
	if r.Mode != ModeDirect && r.Mode != ModeConference {
		return Invalidf("mode", "mode must be %q or %q.", ModeDirect, ModeConference)
	}
	if r.Ring != RingSimultaneous && r.Ring != RingSequential {
		return Invalidf("ring", "ring must be %q or %q.", RingSimultaneous, RingSequential)
	}
	if r.TimeoutSeconds < 5 || r.TimeoutSeconds > 600 {
		return Invalidf("timeout_seconds", "timeout_seconds must be between 5 and 600.")
	}
	if r.CallerID != CallerIDCaller && r.CallerID != CallerIDNumber {
		return Invalidf("caller_id", "caller_id must be %q or %q.", CallerIDCaller, CallerIDNumber)
	}
	if err := validSay("greeting", r.Greeting); err != nil {
		return err
	}
	if len(r.Language) > maxLanguageLen {
		return Invalidf("language", "language must be at most %d characters.", maxLanguageLen)
	}
	if !languageRe.MatchString(r.Language) {
		return Invalidf("language", "language %s is not a language tag like en-US.", quoteShort(r.Language))
	}
	if r.Voice != "" && !voiceRe.MatchString(r.Voice) {
		return Invalidf("voice", "voice %s is not a Twilio voice name like Polly.Joanna.", quoteShort(r.Voice))
	}
	if !isText(r.Label) || strings.ContainsAny(r.Label, "\r\n") {
		return Invalidf("label", "label must be one line of valid UTF-8 text, without NUL.")
	}
	if utf8.RuneCountInString(r.Label) > MaxLabelLength {
		return Invalidf("label", "label must be at most %d characters.", MaxLabelLength)
	}
	if len(r.Targets) < 1 || len(r.Targets) > MaxTargets {
		return Invalidf("targets", "targets must hold 1 to %d targets.", MaxTargets)
	}
	for i, t := range r.Targets {
		if err := t.validate(fmt.Sprintf("targets[%d]", i)); err != nil {
			return err
		}
	}
	if err := validSay("voicemail.prompt", r.Voicemail.Prompt); err != nil {
		return err
	}
	if n := r.Voicemail.MaxLengthSeconds; n < 1 || n > maxVoicemailLengthSecond {
		return Invalidf("voicemail.max_length_seconds", "voicemail.max_length_seconds must be between 1 and %d.", maxVoicemailLengthSecond)
	}
	if _, err := r.Location(); err != nil {
		return err
	}
	if err := r.validateSchedulePolicies(); err != nil {
		return err
	}
	if err := r.validateAudio(); err != nil {
		return err
	}
	if err := r.Voicemail.validateRecordings(); err != nil {
		return err
	}
	return r.Notify.validate()
}

// Location returns the zone the owner reads times in: time_zone, or nil when the routing
// leaves it to the instance (CALLRELAY_TIME_ZONE). An invalid name is an EINVALID error.
func (r Routing) Location() (*time.Location, error) {
	if r.TimeZone == "" {
		return nil, nil
	}
	return LoadZone("time_zone", r.TimeZone)
}

// invalidUTF8At returns the offset of b's first byte that is not part of valid UTF-8.
func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// isText reports whether s can be stored as PostgreSQL text: valid UTF-8 without NUL.
func isText(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// quoteShort quotes s for an error message, cut to maxQuoted bytes: a refused value is
// repeated to help, not echoed whole.
func quoteShort(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "…"
}

func validSay(field, s string) error {
	if !isText(s) {
		return Invalidf(field, "%s must be valid UTF-8 text, without NUL.", field)
	}
	if utf8.RuneCountInString(s) > maxSayLen {
		return Invalidf(field, "%s must be at most %d characters.", field, maxSayLen)
	}
	return nil
}

func (t Target) validate(field string) error {
	// Fields of other target types must be empty: a "to" on a SIP target is a mistake to report.
	stray := func(names ...string) error {
		vals := map[string]bool{"to": t.To != "", "uri": t.URI != "", "username": t.Username != "",
			"password": t.Password != "", "headers": len(t.Headers) > 0, "transport": t.Transport != "",
			"region": t.Region != "", "identity": t.Identity != ""}
		for _, n := range []string{"to", "uri", "username", "password", "headers", "transport", "region", "identity"} {
			if vals[n] && !slices.Contains(names, n) {
				return Invalidf(field+"."+n, "%s does not apply to a %s target.", n, t.Type)
			}
		}
		return nil
	}
	// Empty is a routing stored before screening existed, or built in Go: ScreenOff.
	if t.Screen != "" && t.Screen != ScreenPress && t.Screen != ScreenAnnounce && t.Screen != ScreenOff {
		return Invalidf(field+".screen", "screen must be %q, %q or %q.", ScreenPress, ScreenAnnounce, ScreenOff)
	}
	switch t.Type {
	case TargetPhone:
		if !ValidNumber(t.To) {
			return Invalidf(field+".to", "to %s is not an E.164 number like +15550001111.", quoteShort(t.To))
		}
		return stray("to")
	case TargetClient:
		if !identityRe.MatchString(t.Identity) {
			return Invalidf(field+".identity", "identity must be 1 to 121 letters, digits or _ . @ -.")
		}
		return stray("identity")
	case TargetSIP:
		return t.validateSIP(field, stray)
	case "":
		return Invalidf(field+".type", "type is required: phone, sip or client.")
	}
	return Invalidf(field+".type", "type %s is not phone, sip or client.", quoteShort(t.Type))
}

func (t Target) validateSIP(field string, stray func(...string) error) error {
	if err := stray("uri", "username", "password", "headers", "transport", "region"); err != nil {
		return err
	}
	if len(t.URI) >= maxSIPURILen {
		return Invalidf(field+".uri", "uri must be under %d characters.", maxSIPURILen)
	}
	rest, ok := strings.CutPrefix(t.URI, "sip:")
	if !ok {
		return Invalidf(field+".uri", "uri must start with sip:.")
	}
	user, host, ok := strings.Cut(rest, "@")
	if !ok || !sipUserRe.MatchString(user) || !sipHostRe.MatchString(host) {
		return Invalidf(field+".uri", "uri must be sip:user@host, without parameters or headers (use transport, region and headers).")
	}
	if len(t.Username) > maxSIPCredentialLen {
		return Invalidf(field+".username", "username must be at most %d characters.", maxSIPCredentialLen)
	}
	if len(t.Password) > maxSIPCredentialLen {
		return Invalidf(field+".password", "password must be at most %d characters.", maxSIPCredentialLen)
	}
	if t.Password != "" && t.Username == "" {
		return Invalidf(field+".username", "username is required with a password.")
	}
	if !isText(t.Password) {
		return Invalidf(field+".password", "password must be valid UTF-8, without NUL.")
	}
	if t.Username != "" && !sipUserRe.MatchString(t.Username) {
		return Invalidf(field+".username", "username has characters a SIP username cannot have.")
	}
	if t.Transport != "" && t.Transport != "udp" && t.Transport != "tcp" && t.Transport != "tls" {
		return Invalidf(field+".transport", "transport must be udp, tcp or tls.")
	}
	if t.Region != "" && !slices.Contains(SIPRegions, t.Region) {
		return Invalidf(field+".region", "region must be one of %s.", strings.Join(SIPRegions, " "))
	}
	total := len(t.Headers) - 1 // the '&' between headers, as SIPURI writes them after the '?'
	names := make([]string, 0, len(t.Headers))
	for name := range t.Headers {
		names = append(names, name)
	}
	sort.Strings(names) // report the same header every time
	for _, name := range names {
		hf := field + ".headers." + name
		lower := strings.ToLower(name)
		switch {
		case !headerRe.MatchString(name):
			return Invalidf(hf, "header name %s has characters a header name cannot have.", quoteShort(name))
		case strings.HasPrefix(lower, "x-twilio"):
			return Invalidf(hf, "header names starting with X-Twilio are reserved by Twilio.")
		case !strings.HasPrefix(lower, "x-") && !slices.ContainsFunc(sipStandardHeaders, func(s string) bool { return strings.EqualFold(s, name) }):
			return Invalidf(hf, "header name must start with x- or be one of %s.", strings.Join(sipStandardHeaders, ", "))
		}
		if v := t.Headers[name]; !isText(v) || strings.ContainsAny(v, "\r\n") {
			return Invalidf(hf, "header value must be one line of valid UTF-8, without NUL.")
		}
		total += len(name) + 1 + len(escapeSIPHeaderValue(t.Headers[name]))
	}
	if total >= maxSIPHeadersLen {
		return Invalidf(field+".headers", "headers together must be under %d characters.", maxSIPHeadersLen)
	}
	return nil
}

// NumberPage selects a page of GET /api/numbers: the numbers after After (a number, "" from
// the first), at most Limit of them (0: DefaultListLimit; capped at MaxListLimit).
type NumberPage struct {
	After string
	Limit int
}

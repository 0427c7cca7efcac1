package callrelay_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/callrelay/callrelay/internal/callrelay"
)

// minimalBody is the smallest routing docs/design.md accepts: every other field gets its default.
const minimalBody = `{"owner_email":"dana@example.com","targets":[{"type":"phone","to":"+15550001111"}]}`

// defaultRouting is what minimalBody decodes to.
func defaultRouting() callrelay.Routing {
	return callrelay.Routing{
		OwnerEmail:     "dana@example.com",
		Mode:           callrelay.ModeDirect,
		Ring:           callrelay.RingSimultaneous,
		TimeoutSeconds: 20,
		CallerID:       callrelay.CallerIDCaller,
		Language:       "en-US",
		Targets:        []callrelay.Target{{Type: callrelay.TargetPhone, To: "+15550001111", Screen: callrelay.ScreenPress}},
		Voicemail:      callrelay.VoicemailSettings{Enabled: true, MaxLengthSeconds: 115, Transcribe: true},
		Enabled:        true,
	}
}

// withDefaultScreens gives every target of r that sets no screen the default of its type, as
// DecodeRouting does: tables then write targets as they are sent.
func withDefaultScreens(r *callrelay.Routing) {
	for i := range r.Targets {
		if r.Targets[i].Screen == "" {
			r.Targets[i].Screen = callrelay.DefaultScreen(r.Targets[i].Type)
		}
	}
}

// designExample reads docs/design.md's routing example, comments removed.
func designExample(tb testing.TB) []byte {
	tb.Helper()
	b, err := os.ReadFile("testdata/design_example.json")
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// body returns minimalBody as a JSON object after edit has changed it: a table can then state
// only what differs from a valid routing.
func body(tb testing.TB, edit func(m map[string]any)) string {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(minimalBody), &m); err != nil {
		tb.Fatal(err)
	}
	if edit != nil {
		edit(m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// set returns an edit setting top-level fields.
func set(kv ...any) func(map[string]any) {
	return func(m map[string]any) {
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
	}
}

// del returns an edit removing top-level fields.
func del(names ...string) func(map[string]any) {
	return func(m map[string]any) {
		for _, n := range names {
			delete(m, n)
		}
	}
}

// targets returns an edit replacing the targets with the given ones.
func targets(ts ...map[string]any) func(map[string]any) {
	return func(m map[string]any) {
		list := make([]any, len(ts))
		for i, t := range ts {
			list[i] = t
		}
		m["targets"] = list
	}
}

func phone(to string) map[string]any { return map[string]any{"type": "phone", "to": to} }

// sip returns a SIP target with uri and the extra fields kv.
func sip(uri string, kv ...any) map[string]any {
	t := map[string]any{"type": "sip", "uri": uri}
	for i := 0; i < len(kv); i += 2 {
		t[kv[i].(string)] = kv[i+1]
	}
	return t
}

func headers(kv ...string) map[string]any {
	h := map[string]any{}
	for i := 0; i < len(kv); i += 2 {
		h[kv[i]] = kv[i+1]
	}
	return h
}

// sipURIOfLen returns a valid SIP URI n characters long.
func sipURIOfLen(n int) string {
	const pre, host = "sip:", "@pbx.example.com"
	return pre + strings.Repeat("u", n-len(pre)-len(host)) + host
}

func decode(tb testing.TB, s string) (callrelay.Routing, error) {
	tb.Helper()
	return callrelay.DecodeRouting(strings.NewReader(s))
}

func TestDecodeRouting_OK(t *testing.T) {
	tests := []struct {
		name string
		body string
		// want edits defaultRouting() into the routing the body decodes to.
		want func(r *callrelay.Routing)
	}{
		{name: "minimal gets defaults", body: minimalBody},
		{name: "enabled false kept", body: body(t, set("enabled", false)),
			want: func(r *callrelay.Routing) { r.Enabled = false }},
		{name: "voicemail transcribe false kept, rest defaulted",
			body: body(t, set("voicemail", map[string]any{"transcribe": false})),
			want: func(r *callrelay.Routing) { r.Voicemail.Transcribe, r.Voicemail.MaxLengthSeconds = false, 120 }},
		// Twilio transcribes under 120 s only: the default stays under it when it transcribes.
		{name: "a language Twilio cannot transcribe keeps 120 s", body: body(t, set("language", "fr-FR")),
			want: func(r *callrelay.Routing) { r.Language, r.Voicemail.MaxLengthSeconds = "fr-FR", 120 }},
		{name: "transcribe with a longer maximum accepted",
			body: body(t, set("voicemail", map[string]any{"transcribe": true, "max_length_seconds": 300})),
			want: func(r *callrelay.Routing) { r.Voicemail.MaxLengthSeconds = 300 }},
		{name: "time_zone", body: body(t, set("time_zone", "Europe/Paris")),
			want: func(r *callrelay.Routing) { r.TimeZone = "Europe/Paris" }},
		{name: "time_zone UTC", body: body(t, set("time_zone", "UTC")),
			want: func(r *callrelay.Routing) { r.TimeZone = "UTC" }},
		{name: "time_zone three levels", body: body(t, set("time_zone", "America/Argentina/Buenos_Aires")),
			want: func(r *callrelay.Routing) { r.TimeZone = "America/Argentina/Buenos_Aires" }},
		{name: "time_zone empty: the instance's", body: body(t, set("time_zone", ""))},
		{name: "voicemail enabled false kept",
			body: body(t, set("voicemail", map[string]any{"enabled": false})),
			want: func(r *callrelay.Routing) { r.Voicemail.Enabled = false }},
		{name: "voicemail empty object gets defaults", body: body(t, set("voicemail", map[string]any{}))},
		{name: "voicemail prompt only",
			body: body(t, set("voicemail", map[string]any{"prompt": "Speak."})),
			want: func(r *callrelay.Routing) { r.Voicemail.Prompt = "Speak." }},
		{name: "voicemail max_length_seconds 1", body: body(t, set("voicemail", map[string]any{"max_length_seconds": 1})),
			want: func(r *callrelay.Routing) { r.Voicemail.MaxLengthSeconds = 1 }},
		{name: "voicemail max_length_seconds 3600", body: body(t, set("voicemail", map[string]any{"max_length_seconds": 3600})),
			want: func(r *callrelay.Routing) { r.Voicemail.MaxLengthSeconds = 3600 }},
		{name: "timeout 5", body: body(t, set("timeout_seconds", 5)),
			want: func(r *callrelay.Routing) { r.TimeoutSeconds = 5 }},
		{name: "timeout 600", body: body(t, set("timeout_seconds", 600)),
			want: func(r *callrelay.Routing) { r.TimeoutSeconds = 600 }},
		{name: "conference sequential number", body: body(t, set("mode", "conference", "ring", "sequential", "caller_id", "number")),
			want: func(r *callrelay.Routing) {
				r.Mode, r.Ring, r.CallerID = callrelay.ModeConference, callrelay.RingSequential, callrelay.CallerIDNumber
			}},
		{name: "language fr", body: body(t, set("language", "fr")),
			want: func(r *callrelay.Routing) { r.Language, r.Voicemail.MaxLengthSeconds = "fr", 120 }},
		{name: "language de-DE and voice", body: body(t, set("language", "de-DE", "voice", "Polly.Marlene")),
			want: func(r *callrelay.Routing) {
				r.Language, r.Voice, r.Voicemail.MaxLengthSeconds = "de-DE", "Polly.Marlene", 120
			}},
		{name: "greeting of 4096 characters", body: body(t, set("greeting", strings.Repeat("a", 4096))),
			want: func(r *callrelay.Routing) { r.Greeting = strings.Repeat("a", 4096) }},
		{name: "greeting of 4096 two-byte characters", body: body(t, set("greeting", strings.Repeat("é", 4096))),
			want: func(r *callrelay.Routing) { r.Greeting = strings.Repeat("é", 4096) }},
		{name: "10 targets",
			body: body(t, targets(phone("+15550000000"), phone("+15550000001"), phone("+15550000002"), phone("+15550000003"),
				phone("+15550000004"), phone("+15550000005"), phone("+15550000006"), phone("+15550000007"),
				phone("+15550000008"), phone("+15550000009"))),
			want: func(r *callrelay.Routing) {
				r.Targets = nil
				for i := range 10 {
					r.Targets = append(r.Targets, callrelay.Target{Type: "phone", To: fmt.Sprintf("+1555000000%d", i)})
				}
			}},
		{name: "phone of 15 digits", body: body(t, targets(phone("+123456789012345"))),
			want: func(r *callrelay.Routing) { r.Targets[0].To = "+123456789012345" }},
		{name: "sip uri of 254 characters", body: body(t, targets(sip(sipURIOfLen(254)))),
			want: func(r *callrelay.Routing) { r.Targets = []callrelay.Target{{Type: "sip", URI: sipURIOfLen(254)}} }},
		{name: "sip host with port", body: body(t, targets(sip("sip:dana@10.0.0.1:5061"))),
			want: func(r *callrelay.Routing) {
				r.Targets = []callrelay.Target{{Type: "sip", URI: "sip:dana@10.0.0.1:5061"}}
			}},
		{name: "sip standard headers",
			body: body(t, targets(sip("sip:dana@pbx.example.com", "headers", headers(
				"User-to-User", "a", "Remote-Party-ID", "b", "P-Preferred-Identity", "c", "P-Called-Party-ID", "d", "x-team", "sales")))),
			want: func(r *callrelay.Routing) {
				r.Targets = []callrelay.Target{{Type: "sip", URI: "sip:dana@pbx.example.com", Headers: map[string]string{
					"User-to-User": "a", "Remote-Party-ID": "b", "P-Preferred-Identity": "c", "P-Called-Party-ID": "d", "x-team": "sales"}}}
			}},
		{name: "sip empty headers object is no headers", body: body(t, targets(sip("sip:dana@pbx.example.com", "headers", headers()))),
			want: func(r *callrelay.Routing) {
				r.Targets = []callrelay.Target{{Type: "sip", URI: "sip:dana@pbx.example.com"}}
			}},
		{name: "sip standard header name in another case",
			body: body(t, targets(sip("sip:dana@pbx.example.com", "headers", headers("user-to-user", "a")))),
			want: func(r *callrelay.Routing) {
				r.Targets = []callrelay.Target{{Type: "sip", URI: "sip:dana@pbx.example.com", Headers: map[string]string{"user-to-user": "a"}}}
			}},
		{name: "sip X- header", body: body(t, targets(sip("sip:dana@pbx.example.com", "headers", headers("X-Team", "a")))),
			want: func(r *callrelay.Routing) {
				r.Targets = []callrelay.Target{{Type: "sip", URI: "sip:dana@pbx.example.com", Headers: map[string]string{"X-Team": "a"}}}
			}},
		{name: "sip credentials", body: body(t, targets(sip("sip:dana@pbx.example.com", "username", "dana", "password", "s3cret"))),
			want: func(r *callrelay.Routing) {
				r.Targets = []callrelay.Target{{Type: "sip", URI: "sip:dana@pbx.example.com", Username: "dana", Password: "s3cret"}}
			}},
		{name: "sip username without password", body: body(t, targets(sip("sip:dana@pbx.example.com", "username", "dana"))),
			want: func(r *callrelay.Routing) {
				r.Targets = []callrelay.Target{{Type: "sip", URI: "sip:dana@pbx.example.com", Username: "dana"}}
			}},
		{name: "client", body: body(t, targets(map[string]any{"type": "client", "identity": "dana@example.com"})),
			want: func(r *callrelay.Routing) {
				r.Targets = []callrelay.Target{{Type: "client", Identity: "dana@example.com"}}
			}},
		{name: "whitespace around the object", body: " \n\t" + minimalBody + " \r\n "},
		{name: "design example", body: string(designExample(t)),
			want: func(r *callrelay.Routing) {
				r.TimeoutSeconds = 15
				r.Voicemail.MaxLengthSeconds = 120 // asked for: longer messages lack a transcript
				r.Greeting = "Please hold while we connect you."
				r.Voice = "Polly.Joanna"
				r.Targets = []callrelay.Target{
					{Type: "phone", To: "+15550001111"},
					{Type: "sip", URI: "sip:dana@pbx.example.com", Username: "dana", Password: "s3cret",
						Headers: map[string]string{"x-team": "sales"}, Transport: "tls", Region: "ie1"},
					{Type: "client", Identity: "dana"},
				}
				r.Voicemail.Prompt = "Please leave a message after the beep."
			}},
	}
	for _, transport := range []string{"udp", "tcp", "tls"} {
		tests = append(tests, struct {
			name string
			body string
			want func(r *callrelay.Routing)
		}{name: "sip transport " + transport, body: body(t, targets(sip("sip:dana@pbx.example.com", "transport", transport))),
			want: func(r *callrelay.Routing) {
				r.Targets = []callrelay.Target{{Type: "sip", URI: "sip:dana@pbx.example.com", Transport: transport}}
			}})
	}
	for _, region := range []string{"us1", "us2", "ie1", "de1", "sg1", "jp1", "br1", "au1"} {
		tests = append(tests, struct {
			name string
			body string
			want func(r *callrelay.Routing)
		}{name: "sip region " + region, body: body(t, targets(sip("sip:dana@pbx.example.com", "region", region))),
			want: func(r *callrelay.Routing) {
				r.Targets = []callrelay.Target{{Type: "sip", URI: "sip:dana@pbx.example.com", Region: region}}
			}})
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decode(t, tt.body)
			if err != nil {
				t.Fatalf("DecodeRouting: got error %v, want nil", err)
			}
			want := defaultRouting()
			if tt.want != nil {
				tt.want(&want)
			}
			withDefaultScreens(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("DecodeRouting:\ngot  %+v\nwant %+v", got, want)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate of a decoded routing: got %v, want nil", err)
			}
		})
	}
}

func TestDecodeRouting_ErrInvalid(t *testing.T) {
	const sipURI = "sip:dana@pbx.example.com"
	eleven := make([]map[string]any, 11)
	for i := range eleven {
		eleven[i] = phone(fmt.Sprintf("+155500000%02d", i))
	}
	tests := []struct {
		name  string
		body  string
		field string
	}{
		// owner_email
		{"owner_email missing", body(t, del("owner_email")), "owner_email"},
		{"owner_email empty", body(t, set("owner_email", "")), "owner_email"},
		{"owner_email not an address", body(t, set("owner_email", "dana")), "owner_email"},
		{"owner_email no domain", body(t, set("owner_email", "dana@")), "owner_email"},
		{"owner_email with a display name", body(t, set("owner_email", "Dana <dana@example.com>")), "owner_email"},
		{"owner_email two addresses", body(t, set("owner_email", "dana@example.com, eve@example.com")), "owner_email"},

		// enums
		{"mode unknown", body(t, set("mode", "bridge")), "mode"},
		{"mode empty", body(t, set("mode", "")), "mode"},
		{"mode other case", body(t, set("mode", "Direct")), "mode"},
		{"ring unknown", body(t, set("ring", "round-robin")), "ring"},
		{"ring empty", body(t, set("ring", "")), "ring"},
		{"caller_id unknown", body(t, set("caller_id", "masked")), "caller_id"},
		{"caller_id a number", body(t, set("caller_id", "+15550001111")), "caller_id"},

		// timeout_seconds
		{"timeout 4", body(t, set("timeout_seconds", 4)), "timeout_seconds"},
		{"timeout 601", body(t, set("timeout_seconds", 601)), "timeout_seconds"},
		{"timeout 0", body(t, set("timeout_seconds", 0)), "timeout_seconds"},
		{"timeout negative", body(t, set("timeout_seconds", -20)), "timeout_seconds"},

		// <Say> texts and voice
		{"greeting of 4097 characters", body(t, set("greeting", strings.Repeat("a", 4097))), "greeting"},
		{"greeting of 4097 two-byte characters", body(t, set("greeting", strings.Repeat("é", 4097))), "greeting"},
		{"voicemail prompt of 4097 characters", body(t, set("voicemail", map[string]any{"prompt": strings.Repeat("a", 4097)})), "voicemail.prompt"},
		{"language english", body(t, set("language", "english")), "language"},
		{"language empty", body(t, set("language", "")), "language"},
		{"language underscore", body(t, set("language", "en_US")), "language"},
		{"voice with a space", body(t, set("voice", "Polly Joanna")), "voice"},

		// voicemail
		{"voicemail max_length_seconds 0", body(t, set("voicemail", map[string]any{"max_length_seconds": 0})), "voicemail.max_length_seconds"},
		{"voicemail max_length_seconds negative", body(t, set("voicemail", map[string]any{"max_length_seconds": -1})), "voicemail.max_length_seconds"},
		{"voicemail max_length_seconds 3601", body(t, set("voicemail", map[string]any{"max_length_seconds": 3601})), "voicemail.max_length_seconds"},
		{"time_zone unknown", body(t, set("time_zone", "Mars/Olympus_Mons")), "time_zone"},
		{"time_zone Local", body(t, set("time_zone", "Local")), "time_zone"},
		{"time_zone a path", body(t, set("time_zone", "../../../etc/passwd")), "time_zone"},
		{"time_zone absolute", body(t, set("time_zone", "/usr/share/zoneinfo/UTC")), "time_zone"},
		{"time_zone too long", body(t, set("time_zone", "Europe/"+strings.Repeat("a", 100))), "time_zone"},
		{"time_zone with NUL", body(t, set("time_zone", "Europe/Paris\x00")), "time_zone"},
		{"time_zone a number", body(t, set("time_zone", 1)), "time_zone"},
		{"voicemail max_length_seconds 0 while disabled", body(t, set("voicemail", map[string]any{"enabled": false, "max_length_seconds": 0})), "voicemail.max_length_seconds"},

		// targets
		{"targets missing", body(t, del("targets")), "targets"},
		{"targets null", body(t, set("targets", nil)), "targets"},
		{"0 targets", body(t, targets()), "targets"},
		{"11 targets", body(t, targets(eleven...)), "targets"},
		{"type missing", body(t, targets(map[string]any{"to": "+15550001111"})), "targets[0].type"},
		{"type unknown", body(t, targets(map[string]any{"type": "pstn", "to": "+15550001111"})), "targets[0].type"},
		{"phone not E.164", body(t, targets(phone("5550001111"))), "targets[0].to"},
		{"phone with spaces", body(t, targets(phone("+1 555 000 1111"))), "targets[0].to"},
		{"phone leading zero", body(t, targets(phone("+05550001111"))), "targets[0].to"},
		{"phone of 16 digits", body(t, targets(phone("+1234567890123456"))), "targets[0].to"},
		{"phone to missing", body(t, targets(map[string]any{"type": "phone"})), "targets[0].to"},
		{"second target at fault", body(t, targets(phone("+15550001111"), phone("nope"))), "targets[1].to"},
		{"phone with a uri", body(t, targets(map[string]any{"type": "phone", "to": "+15550001111", "uri": sipURI})), "targets[0].uri"},
		{"phone with an identity", body(t, targets(map[string]any{"type": "phone", "to": "+15550001111", "identity": "dana"})), "targets[0].identity"},
		{"client identity empty", body(t, targets(map[string]any{"type": "client"})), "targets[0].identity"},
		{"client identity with a space", body(t, targets(map[string]any{"type": "client", "identity": "da na"})), "targets[0].identity"},
		{"client identity of 122 characters", body(t, targets(map[string]any{"type": "client", "identity": strings.Repeat("a", 122)})), "targets[0].identity"},
		{"client with headers", body(t, targets(map[string]any{"type": "client", "identity": "dana", "headers": headers("x-a", "b")})), "targets[0].headers"},
		{"sip uri without sip:", body(t, targets(sip("dana@pbx.example.com"))), "targets[0].uri"},
		{"sip uri sips:", body(t, targets(sip("sips:dana@pbx.example.com"))), "targets[0].uri"},
		{"sip uri missing", body(t, targets(map[string]any{"type": "sip"})), "targets[0].uri"},
		{"sip uri without user", body(t, targets(sip("sip:pbx.example.com"))), "targets[0].uri"},
		{"sip uri with parameters", body(t, targets(sip(sipURI+";transport=tls"))), "targets[0].uri"},
		{"sip uri with headers", body(t, targets(sip(sipURI+"?x-team=sales"))), "targets[0].uri"},
		{"sip uri of 255 characters", body(t, targets(sip(sipURIOfLen(255)))), "targets[0].uri"},
		{"sip uri of 300 characters", body(t, targets(sip(sipURIOfLen(300)))), "targets[0].uri"},
		{"sip target with a to", body(t, targets(sip(sipURI, "to", "+15550001111"))), "targets[0].to"},
		{"sip target with an identity", body(t, targets(sip(sipURI, "identity", "dana"))), "targets[0].identity"},
		{"sip password without username", body(t, targets(sip(sipURI, "password", "s3cret"))), "targets[0].username"},
		{"sip username with a space", body(t, targets(sip(sipURI, "username", "da na"))), "targets[0].username"},
		{"sip transport sctp", body(t, targets(sip(sipURI, "transport", "sctp"))), "targets[0].transport"},
		{"sip region eu9", body(t, targets(sip(sipURI, "region", "eu9"))), "targets[0].region"},
		{"sip header X-Twilio-Foo", body(t, targets(sip(sipURI, "headers", headers("X-Twilio-Foo", "a")))), "targets[0].headers.X-Twilio-Foo"},
		{"sip header x-twilio-foo", body(t, targets(sip(sipURI, "headers", headers("x-twilio-foo", "a")))), "targets[0].headers.x-twilio-foo"},
		{"sip header Foo", body(t, targets(sip(sipURI, "headers", headers("Foo", "a")))), "targets[0].headers.Foo"},
		{"sip header name with a space", body(t, targets(sip(sipURI, "headers", headers("x team", "a")))), "targets[0].headers.x team"},
		{"sip header name empty", body(t, targets(sip(sipURI, "headers", headers("", "a")))), "targets[0].headers."},
		{"sip header value with a newline", body(t, targets(sip(sipURI, "headers", headers("x-a", "a\r\nVia: evil")))), "targets[0].headers.x-a"},
		{"sip headers together of 1024 characters", body(t, targets(sip(sipURI, "headers", headers("x-a", strings.Repeat("v", 1020))))), "targets[0].headers"},
		{"sip headers together of 2000 characters", body(t, targets(sip(sipURI, "headers", headers("x-a", strings.Repeat("v", 1000), "x-b", strings.Repeat("v", 1000))))), "targets[0].headers"},
		{"sip headers escaped over 1024 characters", body(t, targets(sip(sipURI, "headers", headers("x-a", strings.Repeat(" ", 400))))), "targets[0].headers"},
		{"third target at fault", body(t, targets(phone("+15550001111"), sip(sipURI), sip(sipURI, "region", "eu9"))), "targets[2].region"},

		// JSON itself
		{"unknown field", body(t, set("owner", "dana@example.com")), "owner"},
		{"unknown field, a typo", body(t, set("timeout", 15)), "timeout"},
		{"unknown field in a target", body(t, targets(map[string]any{"type": "phone", "to": "+15550001111", "number": "x"})), "number"},
		{"unknown field in voicemail", body(t, set("voicemail", map[string]any{"max_length": 60})), "max_length"},
		{"unknown field with a quote and a control character", body(t, set("a\"b\x7f", 1)), "a\"b\x7f"},
		{"greeting with NUL", body(t, set("greeting", "a\x00b")), "greeting"},
		{"voicemail prompt with NUL", body(t, set("voicemail", map[string]any{"prompt": "\x00"})), "voicemail.prompt"},
		{"sip password with NUL", body(t, targets(sip(sipURI, "username", "dana", "password", "p\x00"))), "targets[0].password"},
		{"sip header value with NUL", body(t, targets(sip(sipURI, "headers", headers("x-a", "a\x00")))), "targets[0].headers.x-a"},
		{"not UTF-8", strings.Replace(minimalBody, "dana", "d\xffna", 1), ""},
		{"timeout_seconds a string", body(t, set("timeout_seconds", "15")), "timeout_seconds"},
		{"timeout_seconds a fraction", body(t, set("timeout_seconds", 15.5)), "timeout_seconds"},
		{"enabled a string", body(t, set("enabled", "yes")), "enabled"},
		{"owner_email a number", body(t, set("owner_email", 5)), "owner_email"},
		{"targets an object", body(t, set("targets", map[string]any{})), "targets"},
		{"voicemail max_length_seconds a string", body(t, set("voicemail", map[string]any{"max_length_seconds": "60"})), "voicemail.max_length_seconds"},
		{"trailing garbage", minimalBody + " garbage", ""},
		{"trailing object", minimalBody + " {}", ""},
		{"trailing ]", minimalBody + "]", ""},
		{"trailing }", minimalBody + "}", ""},
		{"trailing number", minimalBody + " 1", ""},
		{"syntax error", `{"owner_email":`, ""},
		{"not JSON", `owner_email=dana@example.com`, ""},
		{"empty body", ``, ""},
		{"an array", `[` + minimalBody + `]`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decode(t, tt.body)
			if err == nil {
				t.Fatalf("DecodeRouting: got %+v, nil error; want an error on field %q", got, tt.field)
			}
			var e *callrelay.Error
			if !errors.As(err, &e) {
				t.Fatalf("DecodeRouting: got error %T %v, want *callrelay.Error", err, err)
			}
			if e.Code != callrelay.EINVALID {
				t.Errorf("Code: got %q, want %q", e.Code, callrelay.EINVALID)
			}
			if e.Field != tt.field {
				t.Errorf("Field: got %q, want %q (message %q)", e.Field, tt.field, e.Message)
			}
			if e.Message == "" {
				t.Error("Message: got empty, want a message for people")
			}
			if !reflect.DeepEqual(got, callrelay.Routing{}) {
				t.Errorf("routing: got %+v, want the zero Routing on error", got)
			}
		})
	}
}

// TestDecodeRouting_invalidUTF8 checks that invalid UTF-8 in a body never reaches a routing:
// encoding/json replaces it with U+FFFD, so the routing always passes Validate.
func TestDecodeRouting_invalidUTF8(t *testing.T) {
	for name, greeting := range map[string]string{
		"raw byte":       "\"hello \xff\"",
		"lone surrogate": `"hello \ud800"`,
	} {
		t.Run(name, func(t *testing.T) {
			r, err := decode(t, `{"owner_email":"dana@example.com","greeting":`+greeting+`,"targets":[{"type":"phone","to":"+15550001111"}]}`)
			if err != nil {
				if callrelay.ErrorCode(err) != callrelay.EINVALID {
					t.Fatalf("DecodeRouting: got %v, want nil or an invalid error", err)
				}
				return
			}
			if !utf8.ValidString(r.Greeting) {
				t.Errorf("Greeting: got invalid UTF-8 %q", r.Greeting)
			}
		})
	}
}

// TestRouting_Validate_ErrInvalid covers what JSON cannot carry: a routing built in Go.
func TestRouting_Validate_ErrInvalid(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(r *callrelay.Routing)
		field string
	}{
		{"greeting invalid UTF-8", func(r *callrelay.Routing) { r.Greeting = "hello \xff" }, "greeting"},
		{"voicemail prompt invalid UTF-8", func(r *callrelay.Routing) { r.Voicemail.Prompt = "\xc3(" }, "voicemail.prompt"},
		{"sip header value invalid UTF-8", func(r *callrelay.Routing) {
			r.Targets = []callrelay.Target{{Type: "sip", URI: "sip:dana@pbx.example.com", Headers: map[string]string{"x-a": "\xff"}}}
		}, "targets[0].headers.x-a"},
		{"zero routing owner first", func(r *callrelay.Routing) { *r = callrelay.Routing{} }, "owner_email"},
		{"nil targets", func(r *callrelay.Routing) { r.Targets = nil }, "targets"},
		{"timeout 0", func(r *callrelay.Routing) { r.TimeoutSeconds = 0 }, "timeout_seconds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := defaultRouting()
			tt.edit(&r)
			err := r.Validate()
			var e *callrelay.Error
			if !errors.As(err, &e) {
				t.Fatalf("Validate: got %v, want *callrelay.Error", err)
			}
			if e.Code != callrelay.EINVALID || e.Field != tt.field {
				t.Errorf("Validate: got code %q field %q, want code %q field %q", e.Code, e.Field, callrelay.EINVALID, tt.field)
			}
		})
	}
}

// TestRouting_Validate_sipHeadersLimit checks the 1024 limit against what SIPURI writes: the
// headers after '?', values escaped, joined by '&'.
func TestRouting_Validate_sipHeadersLimit(t *testing.T) {
	tests := []struct {
		name    string
		headers map[string]string
	}{
		{"one header, 1023", map[string]string{"x-a": strings.Repeat("v", 1019)}},
		{"one header, 1024", map[string]string{"x-a": strings.Repeat("v", 1020)}},
		{"two headers, 1023", map[string]string{"x-a": strings.Repeat("v", 500), "x-b": strings.Repeat("v", 514)}},
		{"two headers, 1024", map[string]string{"x-a": strings.Repeat("v", 500), "x-b": strings.Repeat("v", 515)}},
		{"escaped spaces, 1023", map[string]string{"x-a": strings.Repeat(" ", 339) + "vv"}},
		{"escaped spaces, 1024", map[string]string{"x-a": strings.Repeat(" ", 340)}},
		{"non-ASCII, 1023", map[string]string{"x-a": strings.Repeat("é", 169) + strings.Repeat("v", 5)}},
		{"non-ASCII, 1024", map[string]string{"x-a": strings.Repeat("é", 170)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := defaultRouting()
			r.Targets = []callrelay.Target{{Type: "sip", URI: "sip:dana@pbx.example.com", Headers: tt.headers}}
			_, written, _ := strings.Cut(r.Targets[0].SIPURI(), "?")
			err := r.Validate()
			if len(written) < 1024 && err != nil {
				t.Errorf("headers written in %d characters: got %v, want nil", len(written), err)
			}
			if len(written) >= 1024 {
				var e *callrelay.Error
				if !errors.As(err, &e) || e.Field != "targets[0].headers" {
					t.Errorf("headers written in %d characters: got %v, want an error on targets[0].headers", len(written), err)
				}
			}
		})
	}
}

func TestTarget_SIPURI(t *testing.T) {
	const uri = "sip:dana@pbx.example.com"
	tests := []struct {
		name   string
		target callrelay.Target
		want   string
	}{
		{"design example",
			callrelay.Target{Type: "sip", URI: uri, Username: "dana", Password: "s3cret",
				Headers: map[string]string{"x-team": "sales"}, Transport: "tls", Region: "ie1"},
			"sip:dana@pbx.example.com;transport=tls;region=ie1?x-team=sales"},
		{"bare", callrelay.Target{Type: "sip", URI: uri}, uri},
		{"empty headers map", callrelay.Target{Type: "sip", URI: uri, Headers: map[string]string{}}, uri},
		{"transport only", callrelay.Target{Type: "sip", URI: uri, Transport: "udp"}, uri + ";transport=udp"},
		{"region only", callrelay.Target{Type: "sip", URI: uri, Region: "de1"}, uri + ";region=de1"},
		{"headers only", callrelay.Target{Type: "sip", URI: uri, Headers: map[string]string{"x-a": "1"}}, uri + "?x-a=1"},
		{"space", callrelay.Target{Type: "sip", URI: uri, Headers: map[string]string{"x-a": "a b"}}, uri + "?x-a=a%20b"},
		{"& and =", callrelay.Target{Type: "sip", URI: uri, Headers: map[string]string{"x-a": "1&k=v"}}, uri + "?x-a=1%26k%3Dv"},
		{"plus", callrelay.Target{Type: "sip", URI: uri, Headers: map[string]string{"x-a": "+15550001111"}}, uri + "?x-a=%2B15550001111"},
		{"percent, ? and ;", callrelay.Target{Type: "sip", URI: uri, Headers: map[string]string{"x-a": "100%?;"}}, uri + "?x-a=100%25%3F%3B"},
		{"non-ASCII", callrelay.Target{Type: "sip", URI: uri, Headers: map[string]string{"x-a": "Zoë 日"}}, uri + "?x-a=Zo%C3%AB%20%E6%97%A5"},
		{"empty value", callrelay.Target{Type: "sip", URI: uri, Headers: map[string]string{"x-a": ""}}, uri + "?x-a="},
		{"several headers sorted",
			callrelay.Target{Type: "sip", URI: uri, Transport: "tcp", Headers: map[string]string{
				"x-c": "3", "x-a": "1", "User-to-User": "u", "x-b": "2", "P-Called-Party-ID": "p"}},
			uri + ";transport=tcp?P-Called-Party-ID=p&User-to-User=u&x-a=1&x-b=2&x-c=3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 20 { // map order changes from one iteration to the next: the URI must not
				if got := tt.target.SIPURI(); got != tt.want {
					t.Fatalf("SIPURI: got %q, want %q", got, tt.want)
				}
			}
		})
	}
}

// TestTarget_SIPURI_roundTrip checks that a SIP stack decoding the header values (RFC 3261:
// %XX escapes only, '+' is a plus) gets the values back.
func TestTarget_SIPURI_roundTrip(t *testing.T) {
	values := []string{"a b", "a+b", "1&k=v", "Zoë", "100%", "~-._!*'()", "a/b:c@d", `"quoted"`}
	for _, v := range values {
		tg := callrelay.Target{Type: "sip", URI: "sip:dana@pbx.example.com", Headers: map[string]string{"x-a": v}}
		_, hs, _ := strings.Cut(tg.SIPURI(), "?")
		escaped := strings.TrimPrefix(hs, "x-a=")
		if strings.ContainsAny(escaped, " &=?;+\"") {
			t.Errorf("SIPURI of %q: got value %q, want space & = ? ; + \" escaped", v, escaped)
		}
		if got, err := url.PathUnescape(escaped); err != nil || got != v {
			t.Errorf("SIPURI of %q: value %q unescapes to %q (%v), want %q", v, escaped, got, err, v)
		}
	}
}

func TestTarget_String(t *testing.T) {
	tests := []struct {
		target callrelay.Target
		want   string
	}{
		{callrelay.Target{Type: "phone", To: "+15550001111"}, "+15550001111"},
		{callrelay.Target{Type: "sip", URI: "sip:dana@pbx.example.com", Region: "ie1"}, "sip:dana@pbx.example.com"},
		{callrelay.Target{Type: "client", Identity: "dana"}, "client:dana"},
		{callrelay.Target{Type: "fax", To: "+15550001111"}, ""},
	}
	for _, tt := range tests {
		if got := tt.target.String(); got != tt.want {
			t.Errorf("%+v.String(): got %q, want %q", tt.target, got, tt.want)
		}
	}
}

func TestRouting_Redacted(t *testing.T) {
	r, err := callrelay.DecodeRouting(bytes.NewReader(designExample(t)))
	if err != nil {
		t.Fatal(err)
	}
	r.Targets = append(r.Targets, callrelay.Target{Type: "sip", URI: "sip:eve@pbx.example.com", Username: "eve", Password: "hunter2"})
	orig := cloneRouting(t, r)

	red := r.Redacted()

	for i, tg := range red.Targets {
		if tg.Password != "" {
			t.Errorf("Redacted().Targets[%d].Password: got %q, want empty", i, tg.Password)
		}
	}
	js, err := json.Marshal(red)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"s3cret", "hunter2", `"password"`} {
		if bytes.Contains(js, []byte(secret)) {
			t.Errorf("Redacted() JSON: got %s, want no %s", js, secret)
		}
	}
	if !reflect.DeepEqual(r, orig) {
		t.Errorf("Redacted modified the original:\ngot  %+v\nwant %+v", r, orig)
	}
	// Everything but the passwords is kept.
	want := cloneRouting(t, orig)
	for i := range want.Targets {
		want.Targets[i].Password = ""
	}
	if !reflect.DeepEqual(red, want) {
		t.Errorf("Redacted():\ngot  %+v\nwant %+v", red, want)
	}
	// The copy does not share the original's targets.
	red.Targets[1].Username = "mallory"
	red.Targets[1].Password = "changed"
	if r.Targets[1].Username != "dana" || r.Targets[1].Password != "s3cret" {
		t.Errorf("changing Redacted()'s target changed the original: got %+v", r.Targets[1])
	}
}

func TestRouting_Redacted_noTargets(t *testing.T) {
	var r callrelay.Routing
	if got := r.Redacted(); len(got.Targets) != 0 {
		t.Errorf("Redacted() of no targets: got %d targets, want 0", len(got.Targets))
	}
}

// cloneRouting deep-copies r through JSON (Routing has no unexported or json:"-" fields).
func cloneRouting(tb testing.TB, r callrelay.Routing) callrelay.Routing {
	tb.Helper()
	js, err := json.Marshal(r)
	if err != nil {
		tb.Fatal(err)
	}
	var out callrelay.Routing
	if err := json.Unmarshal(js, &out); err != nil {
		tb.Fatal(err)
	}
	return out
}

func TestRouting_TranscriptionPossible(t *testing.T) {
	tests := []struct {
		language   string
		transcribe bool
		want       bool
	}{
		{"en-US", true, true},
		{"en-US", false, false},
		{"en-GB", true, false},
		{"fr-FR", true, false},
	}
	for _, tt := range tests {
		r := defaultRouting()
		r.Language, r.Voicemail.Transcribe = tt.language, tt.transcribe
		if got := r.TranscriptionPossible(); got != tt.want {
			t.Errorf("TranscriptionPossible(language %s, transcribe %v): got %v, want %v", tt.language, tt.transcribe, got, tt.want)
		}
	}
}

func TestRouting_VoicemailPrompt(t *testing.T) {
	r := defaultRouting()
	if got, want := r.VoicemailPrompt(), callrelay.DefaultVoicemailPrompt; got != want {
		t.Errorf("VoicemailPrompt() default: got %q, want %q", got, want)
	}
	r.Voicemail.Prompt = "Speak now."
	if got, want := r.VoicemailPrompt(), "Speak now."; got != want {
		t.Errorf("VoicemailPrompt(): got %q, want %q", got, want)
	}
}

func TestValidNumber(t *testing.T) {
	for s, want := range map[string]bool{
		"+15550001111": true, "+44": true, "+123456789012345": true,
		"+1": false, "15550001111": false, "+1234567890123456": false, "+0123": false, "": false, "+1555-000": false,
	} {
		if got := callrelay.ValidNumber(s); got != want {
			t.Errorf("ValidNumber(%q): got %v, want %v", s, got, want)
		}
	}
}

func FuzzDecodeRouting(f *testing.F) {
	f.Add([]byte(minimalBody))
	f.Add(designExample(f))
	f.Add([]byte(`{"owner_email":"dana@example.com","ring":"sequential","enabled":false,"voicemail":{"enabled":false,"transcribe":false},` +
		`"targets":[{"type":"sip","uri":"sip:d@h","headers":{"x-a":"a b&c=d","User-to-User":"é"},"region":"de1"},{"type":"client","identity":"d"}]}`))
	f.Add([]byte(`{"owner_email":"dana@example.com","timeout_seconds":"15","targets":[]}`))
	f.Add([]byte(minimalBody + "]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := callrelay.DecodeRouting(bytes.NewReader(data))
		if err != nil {
			var e *callrelay.Error
			if !errors.As(err, &e) {
				t.Fatalf("DecodeRouting: got error %T %v, want *callrelay.Error", err, err)
			}
			if e.Code != callrelay.EINVALID || e.Message == "" {
				t.Fatalf("DecodeRouting: got code %q message %q, want %q with a message (%v)", e.Code, e.Message, callrelay.EINVALID, err)
			}
			// A body that is one well-formed JSON object is refused for a field, and says which:
			// one of the routing's, or a name the body holds (an unknown field, "" included).
			if isOneObject(data) {
				top, _, _ := strings.Cut(strings.SplitN(e.Field, "[", 2)[0], ".")
				if !routingFields[top] && !jsonNames(data)[e.Field] {
					t.Fatalf("DecodeRouting(%q): field %q, want the routing field or body name at fault (%v)", data, e.Field, err)
				}
			}
			return
		}
		if !utf8.Valid(data) {
			t.Fatalf("DecodeRouting(%q): accepted a body that is not UTF-8", data)
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("Validate of a decoded routing: got %v, want nil", err)
		}
		js, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("json.Marshal: %v", err)
		}
		// PostgreSQL's jsonb stores neither invalid UTF-8 nor NUL (\u0000): what is accepted
		// can be stored.
		if !utf8.Valid(js) || bytes.Contains(js, []byte(`\u0000`)) {
			t.Fatalf("accepted a routing PostgreSQL cannot store: %s", js)
		}
		again, err := callrelay.DecodeRouting(bytes.NewReader(js))
		if err != nil {
			t.Fatalf("DecodeRouting of re-encoded %s: got %v, want nil", js, err)
		}
		if !reflect.DeepEqual(again, r) {
			t.Fatalf("round trip:\ngot  %#v\nwant %#v", again, r)
		}
		for i, tg := range r.Targets {
			if tg.Type != callrelay.TargetSIP {
				continue
			}
			_, hs, _ := strings.Cut(tg.SIPURI(), "?")
			if len(hs) >= 1024 {
				t.Fatalf("targets[%d]: headers written in %d characters, want under 1024", i, len(hs))
			}
		}
		for i, tg := range r.Redacted().Targets {
			if tg.Password != "" {
				t.Fatalf("Redacted().Targets[%d].Password: got %q, want empty", i, tg.Password)
			}
		}
	})
}

// routingFields are the routing's JSON names, the first part of any field an error names.
var routingFields = map[string]bool{"owner_email": true, "mode": true, "ring": true, "timeout_seconds": true,
	"caller_id": true, "greeting": true, "language": true, "voice": true, "targets": true, "voicemail": true, "enabled": true}

// isOneObject reports whether data is exactly one syntactically valid JSON object.
func isOneObject(data []byte) bool {
	var m map[string]json.RawMessage
	return utf8.Valid(data) && json.Valid(data) && json.Unmarshal(data, &m) == nil
}

// jsonNames returns every object member name in data, at any depth.
func jsonNames(data []byte) map[string]bool {
	names := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				names[k] = true
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // 1e700 is still JSON
	var v any
	if dec.Decode(&v) == nil {
		walk(v)
	}
	return names
}

func BenchmarkDecodeRouting(b *testing.B) {
	body := designExample(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := callrelay.DecodeRouting(bytes.NewReader(body)); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDecodeRouting_fieldBounds: every string field has a limit (issue 14: a 250 KB address
// was accepted). A value at its limit is taken; one over it, or one of 250 KB, is refused with
// a 400 naming the field, in a message that repeats no more than a little of the value.
func TestDecodeRouting_fieldBounds(t *testing.T) {
	const sipURI = "sip:dana@pbx.example.com"
	huge := strings.Repeat("a", 250<<10)
	email := func(n int) string { return strings.Repeat("d", 64) + "@" + strings.Repeat("e", n-64-1-4) + ".com" }
	lang35 := "en-abcdefgh-abcdefgh-abcdefgh-abcde"
	sipWith := func(kv ...any) string { return body(t, targets(sip(sipURI, kv...))) }
	if len(email(254)) != 254 || len(lang35) != 35 {
		t.Fatalf("fixtures: email %d, language %d", len(email(254)), len(lang35))
	}

	ok := []struct{ name, body string }{
		{"owner_email of 254", body(t, set("owner_email", email(254)))},
		{"language of 35", body(t, set("language", lang35))},
		{"sip username of 128", sipWith("username", strings.Repeat("u", 128))},
		{"sip password of 128", sipWith("username", "dana", "password", strings.Repeat("p", 128))},
	}
	for _, tt := range ok {
		if _, err := decode(t, tt.body); err != nil {
			t.Errorf("%s: %v, want it accepted", tt.name, err)
		}
	}

	refusedTests := []struct{ name, body, field string }{
		{"owner_email of 255", body(t, set("owner_email", email(255))), "owner_email"},
		{"owner_email of 250 KB", body(t, set("owner_email", huge+"@example.com")), "owner_email"},
		{"language of 36", body(t, set("language", lang35+"f")), "language"},
		{"language of 250 KB", body(t, set("language", "en"+strings.Repeat("-abcdefgh", 25<<10))), "language"},
		{"voice of 250 KB", body(t, set("voice", huge)), "voice"},
		{"greeting of 250 KB", body(t, set("greeting", huge)), "greeting"},
		{"voicemail prompt of 250 KB", body(t, set("voicemail", map[string]any{"prompt": huge})), "voicemail.prompt"},
		{"sip username of 129", sipWith("username", strings.Repeat("u", 129)), "targets[0].username"},
		{"sip username of 250 KB", sipWith("username", huge), "targets[0].username"},
		{"sip password of 129", sipWith("username", "dana", "password", strings.Repeat("p", 129)), "targets[0].password"},
		{"sip password of 250 KB", sipWith("username", "dana", "password", huge), "targets[0].password"},
		{"sip uri of 250 KB", body(t, targets(sip("sip:"+huge+"@pbx.example.com"))), "targets[0].uri"},
		{"sip header of 250 KB", sipWith("headers", headers("x-a", huge)), "targets[0].headers"},
		{"sip header name of 250 KB", sipWith("headers", headers("x-"+huge, "v")), "targets[0].headers"},
		{"sip transport of 250 KB", sipWith("transport", huge), "targets[0].transport"},
		{"sip region of 250 KB", sipWith("region", huge), "targets[0].region"},
		{"phone to of 250 KB", body(t, targets(phone("+1"+strings.Repeat("5", 250<<10)))), "targets[0].to"},
		{"client identity of 250 KB", body(t, targets(map[string]any{"type": "client", "identity": huge})), "targets[0].identity"},
		{"type of 250 KB", body(t, targets(map[string]any{"type": huge})), "targets[0].type"},
	}
	for _, tt := range refusedTests {
		_, err := decode(t, tt.body)
		var e *callrelay.Error
		if !errors.As(err, &e) || e.Code != callrelay.EINVALID || e.Field != tt.field {
			t.Errorf("%s: got %.200v, want an invalid error on %.60s", tt.name, err, tt.field)
			continue
		}
		if len(e.Message) > 200 {
			t.Errorf("%s: message of %d bytes repeats the value: %.200s…", tt.name, len(e.Message), e.Message)
		}
	}
}

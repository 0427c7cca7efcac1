package twimltest_test

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/callrelay/callrelay/internal/twiml/twimltest"
)

// fakeTB records what Parse and Validate report instead of failing the real test.
type fakeTB struct {
	testing.TB
	failed, fatal bool
	logs          []string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Logf(format string, args ...any) {
	f.logs = append(f.logs, fmt.Sprintf(format, args...))
}
func (f *fakeTB) Errorf(format string, args ...any) {
	f.failed = true
	f.Logf(format, args...)
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed, f.fatal = true, true
	f.Logf(format, args...)
	runtime.Goexit()
}

// run calls fn with a fakeTB in its own goroutine, so that Fatalf can stop it like the real one.
func run(fn func(tb testing.TB)) *fakeTB {
	f := &fakeTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f
}

// needValidator returns false when xmllint or the XSD is missing, failing under CI=true like
// Validate does.
func needValidator(t *testing.T) bool {
	t.Helper()
	err := twimltest.Check([]byte(`<Response/>`))
	switch {
	case err == nil:
		return true
	case errors.Is(err, twimltest.ErrNoValidator) && os.Getenv("CI") != "true":
		t.Logf("not testing validation: %v", err)
		return false
	}
	t.Fatalf("Check(<Response/>) = %v, want nil", err)
	return false
}

const sample = `<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Say voice="Polly.Joanna" language="en-US">Hello &amp; welcome</Say>
  <Dial timeout="15" action="https://x.example/a?b=1&amp;c=2">+15550000000<Number>+15550001111</Number>
    <Client><Identity>dana</Identity></Client>
  </Dial>
  <Hangup/>
</Response>`

func TestParse(t *testing.T) {
	resp := twimltest.Parse(t, []byte(sample))
	if got, want := resp.ChildNames(), []string{"Say", "Dial", "Hangup"}; !slices.Equal(got, want) {
		t.Errorf("ChildNames() = %v, want %v", got, want)
	}
	if got, want := resp.Find("Say").Text, "Hello & welcome"; got != want {
		t.Errorf("Say text = %q, want %q", got, want)
	}
	dial := resp.Find("Dial")
	if got, want := dial.Attr("action"), "https://x.example/a?b=1&c=2"; got != want {
		t.Errorf("Dial action = %q, want %q", got, want)
	}
	if got, want := strings.TrimSpace(dial.Text), "+15550000000"; got != want {
		t.Errorf("Dial text = %q, want %q", got, want)
	}
	if got, want := resp.Find("Identity").Text, "dana"; got != want {
		t.Errorf("Find(Identity) = %q, want %q (depth-first)", got, want)
	}
	if got := resp.Find("Client").Text; got != "" {
		t.Errorf("Client text = %q, want indentation dropped", got)
	}
	if got := len(resp.FindAll("Number")); got != 1 {
		t.Errorf("FindAll(Number) = %d elements, want 1", got)
	}
	if n := resp.Find("Gather"); n != nil || n.Attr("x") != "" || n.HasAttr("x") || n.Child(0) != nil || n.ChildNames() != nil || n.Find("y") != nil {
		t.Errorf("lookups on a missing element must be nil-safe and empty, got %v", n)
	}
	if resp.Find("Hangup").HasAttr("voice") || !resp.Find("Say").HasAttr("voice") {
		t.Errorf("HasAttr(voice): Hangup %v, Say %v; want false, true", resp.Find("Hangup").HasAttr("voice"), resp.Find("Say").HasAttr("voice"))
	}
}

func TestParse_fails(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"malformed", `<Response><Say>hi</Response>`, "malformed XML"},
		{"empty", ``, "no root element"},
		{"wrong root", `<Other/>`, "root element is <Other>"},
		{"two roots", `<Response/><Response/>`, "second root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := run(func(tb testing.TB) { twimltest.Parse(tb, []byte(tt.doc)) })
			if !f.fatal || !strings.Contains(strings.Join(f.logs, "\n"), tt.want) {
				t.Errorf("Parse(%q): fatal = %v, logs %q; want a fatal error containing %q", tt.doc, f.fatal, f.logs, tt.want)
			}
		})
	}
}

func TestCanonical(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{
			name: "attributes sorted, one element per line",
			doc:  `<?xml version="1.0" encoding="UTF-8"?><Response><Dial timeout="5" action="a&amp;b" callerId="+1"><Number statusCallbackEvent="x" statusCallback="y">+15550001111</Number></Dial><Hangup/></Response>`,
			want: `<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Dial action="a&amp;b" callerId="+1" timeout="5">
    <Number statusCallback="y" statusCallbackEvent="x">+15550001111</Number>
  </Dial>
  <Hangup/>
</Response>
`,
		},
		{
			name: "no declaration, escaped text, mixed content",
			doc:  `<Response><Say>a &lt;b&gt; "c"</Say><Dial> +1 <Number>+2</Number></Dial></Response>`,
			want: `<Response>
  <Say>a &lt;b&gt; &#34;c&#34;</Say>
  <Dial>
    +1
    <Number>+2</Number>
  </Dial>
</Response>
`,
		},
		{
			name: "malformed: returned after a comment",
			doc:  `<Response>`,
			want: "<!-- twimltest.Canonical: malformed XML: XML syntax error on line 1: unexpected EOF -->\n<Response>",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(twimltest.Canonical([]byte(tt.doc))); got != tt.want {
				t.Errorf("Canonical() =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
	// The same document with attributes in another order is canonically equal.
	a := twimltest.Canonical([]byte(`<Response><Say voice="man" language="en-US" loop="2">x</Say></Response>`))
	b := twimltest.Canonical([]byte(`<Response><Say loop="2" language="en-US" voice="man">x</Say></Response>`))
	if string(a) != string(b) {
		t.Errorf("attribute order changes Canonical:\n%s\n%s", a, b)
	}
}

func TestCheck(t *testing.T) {
	if !needValidator(t) {
		return
	}
	const alice = `<Response><Say voice="alice">hi</Say></Response>`
	tests := []struct {
		name    string
		doc     string
		gaps    []twimltest.Gap
		wantErr string // "" when the document must validate
	}{
		{"valid forward", `<?xml version="1.0" encoding="UTF-8"?><Response><Say voice="Polly.Joanna" language="en-US">hi</Say><Dial action="https://x/a" timeout="15" answerOnBridge="true"><Number statusCallback="https://x/s">+15550001111</Number><Sip username="u">sip:a@b</Sip><Client><Identity>dana</Identity></Client></Dial></Response>`, nil, ""},
		{"Dial inside Say", `<Response><Say>hi<Dial>+15550001111</Dial></Say></Response>`, nil, "Element 'Dial': This element is not expected"},
		{"bad attribute type", `<Response><Dial timeout="soon"/></Response>`, nil, "'soon' is not a valid value of the atomic type 'xs:int'"},
		{"unknown verb", `<Response><Bogus/></Response>`, nil, "Element 'Bogus': This element is not expected"},
		{"wrong root", `<Other/>`, nil, "No matching global declaration"},
		{"malformed", `<Response><Say>hi</Response>`, nil, "parser error"},
		{"unknown gap", `<Response/>`, []twimltest.Gap{"Pay"}, `unknown gap "Pay"`},

		{"alice without gap", alice, nil, "attribute 'voice': [facet 'pattern'] The value 'alice'"},
		{"alice with GapSayVoice", alice, []twimltest.Gap{twimltest.GapSayVoice}, ""},
		{"GapSayVoice tolerates nothing else", `<Response><Say voice="alice">hi</Say><Dial timeout="soon"/></Response>`, []twimltest.Gap{twimltest.GapSayVoice}, "'soon' is not a valid value"},
		{"GapSayVoice is not a Dial gap", `<Response><Say voice="alice">hi<Dial/></Say></Response>`, []twimltest.Gap{twimltest.GapSayVoice}, "Element 'Dial': This element is not expected"},
		{"gap named but not needed", `<Response><Say voice="Polly.Joanna">hi</Say></Response>`, []twimltest.Gap{twimltest.GapSayVoice}, "does not need it"},

		{"Leave without gap", `<Response><Leave/></Response>`, nil, "Element 'Leave': This element is not expected"},
		{"Leave with GapLeave", `<Response><Say>bye</Say><Leave/></Response>`, []twimltest.Gap{twimltest.GapLeave}, ""},
		// xmllint stops checking a parent after an unexpected element: the gap must not hide this.
		{"GapLeave still checks what follows", `<Response><Leave/><Dial><Say/></Dial></Response>`, []twimltest.Gap{twimltest.GapLeave}, "Element 'Say': This element is not expected"},
		{"Leave inside Dial is no gap", `<Response><Dial><Leave/></Dial></Response>`, []twimltest.Gap{twimltest.GapLeave}, "Element 'Leave': This element is not expected"},
		{"Connect Stream with both gaps", `<Response><Connect><Stream url="wss://x"/></Connect><Hangup/></Response>`, []twimltest.Gap{twimltest.GapConnect, twimltest.GapStream}, ""},
		{"Connect Stream without GapStream", `<Response><Connect><Stream url="wss://x"/></Connect></Response>`, []twimltest.Gap{twimltest.GapConnect}, "<Stream> inside <Connect> is not covered"},
		{"Stream under Start needs no gap", `<Response><Start><Stream url="wss://x"/></Start></Response>`, nil, ""},
		{"participantLabel without gap", `<Response><Dial><Conference participantLabel="callee-1">c</Conference></Dial></Response>`, nil, "The attribute 'participantLabel' is not allowed"},
		{"participantLabel with gap", `<Response><Dial><Conference participantLabel="callee-1">c</Conference></Dial></Response>`, []twimltest.Gap{twimltest.GapConferenceParticipantLabel}, ""},
		{"maxQueueSize with gap", `<Response><Enqueue maxQueueSize="5">q</Enqueue></Response>`, []twimltest.Gap{twimltest.GapEnqueueMaxQueueSize}, ""},
		{"maxQueueSize gap is not participantLabel", `<Response><Enqueue maxQueueSize="5">q</Enqueue></Response>`, []twimltest.Gap{twimltest.GapConferenceParticipantLabel}, "The attribute 'maxQueueSize' is not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := twimltest.Check([]byte(tt.doc), tt.gaps...)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Check(%s, %v) = %v, want nil", tt.doc, tt.gaps, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Check(%s, %v) = %v, want an error containing %q", tt.doc, tt.gaps, err, tt.wantErr)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	if !needValidator(t) {
		return
	}
	if f := run(func(tb testing.TB) { twimltest.Validate(tb, []byte(`<Response><Hangup/></Response>`)) }); f.failed {
		t.Errorf("Validate(valid) failed: %q", f.logs)
	}
	if f := run(func(tb testing.TB) { twimltest.Validate(tb, []byte(`<Response><Say><Dial/></Say></Response>`)) }); !f.failed {
		t.Errorf("Validate(<Dial> inside <Say>) passed, want a failure")
	}
}

// TestValidate_noValidator: without the XSD, Validate only logs, except under CI=true.
func TestValidate_noValidator(t *testing.T) {
	t.Setenv("TWIML_XSD", t.TempDir()+"/missing.xsd")
	tests := []struct {
		ci        string
		wantFatal bool
	}{
		{"", false},
		{"false", false},
		{"true", true},
	}
	for _, tt := range tests {
		t.Run("CI="+tt.ci, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			f := run(func(tb testing.TB) { twimltest.Validate(tb, []byte(`<Response/>`)) })
			if f.fatal != tt.wantFatal || f.failed != tt.wantFatal || len(f.logs) == 0 {
				t.Errorf("fatal = %v, failed = %v, logs %q; want fatal = %v and a message", f.fatal, f.failed, f.logs, tt.wantFatal)
			}
			if err := twimltest.Check([]byte(`<Response/>`)); !errors.Is(err, twimltest.ErrNoValidator) {
				t.Errorf("Check = %v, want ErrNoValidator", err)
			}
		})
	}
}

// TestCheck_vendoredXSD: with $TWIML_XSD unset, from a directory with nothing around it, Check
// validates against the vendored schema set (it needs only xmllint).
func TestCheck_vendoredXSD(t *testing.T) {
	t.Setenv("TWIML_XSD", "")
	t.Chdir(t.TempDir())
	if !needValidator(t) {
		return
	}
	if err := twimltest.Check([]byte(`<Response><Say><Dial/></Say></Response>`)); err == nil {
		t.Error("Check(<Dial> inside <Say>) = nil, want an error")
	}
	if err := twimltest.Check([]byte(`<Response><Say xml:lang="en">hi</Say><Hangup/></Response>`)); err != nil {
		t.Errorf("Check(valid) = %v", err)
	}
}

// TestValidate_noXmllint: the schema is vendored, so xmllint is what may be missing: Validate
// only logs then, except under CI=true, where it fails the test.
func TestValidate_noXmllint(t *testing.T) {
	t.Setenv("TWIML_XSD", "")
	t.Setenv("PATH", t.TempDir())
	for _, tt := range []struct {
		ci        string
		wantFatal bool
	}{{"", false}, {"true", true}} {
		t.Run("CI="+tt.ci, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			f := run(func(tb testing.TB) { twimltest.Validate(tb, []byte(`<Response/>`)) })
			if f.fatal != tt.wantFatal || f.failed != tt.wantFatal || len(f.logs) == 0 || !strings.Contains(f.logs[0], "xmllint") {
				t.Errorf("fatal = %v, failed = %v, logs %q; want fatal = %v and a message naming xmllint", f.fatal, f.failed, f.logs, tt.wantFatal)
			}
		})
	}
}

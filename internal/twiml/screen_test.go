package twiml_test

import (
	"bytes"
	"testing"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/twiml"
	"github.com/callrelay/callrelay/internal/twiml/twimltest"
)

func TestScreenLine(t *testing.T) {
	plain := routing(t, minimalJSON)
	labelled := routing(t, edit(minimalJSON, `"label": "Sales line"`))
	tests := []struct {
		name string
		r    callrelay.Routing
		from string
		want string
	}{
		{"number read as digits", plain, caller, "Call for 1 5 5 5 1 2 3 0 0 0 0 from 1 5 5 5 9 8 7 0 0 0 0."},
		{"label", labelled, caller, "Call for Sales line from 1 5 5 5 9 8 7 0 0 0 0."},
		{"anonymous", labelled, "anonymous", "Call for Sales line from a withheld number."},
		{"empty From", labelled, "", "Call for Sales line from a withheld number."},
		{"keypad ANONYMOUS", labelled, "+266696687", "Call for Sales line from a withheld number."},
		{"keypad RESTRICTED", labelled, "+7378742833", "Call for Sales line from a withheld number."},
		{"keypad BLOCKED", labelled, "+2562533", "Call for Sales line from a withheld number."},
		{"keypad UNKNOWN", labelled, "+8656696", "Call for Sales line from a withheld number."},
		{"keypad UNAVAILABLE", labelled, "+86282452253", "Call for Sales line from a withheld number."},
		{"client caller", labelled, "client:dana", "Call for Sales line from a withheld number."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := twiml.ScreenLine(tt.r, masked, tt.from); got != tt.want {
				t.Errorf("ScreenLine = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestBuilder_ScreenPress(t *testing.T) {
	r := routing(t, edit(minimalJSON, `"label": "Sales line", "language": "fr-FR", "voice": "Polly.Celine"`))
	doc, err := builder(t).ScreenPress(r, "", 2, masked, caller)
	if err != nil {
		t.Fatal(err)
	}
	resp := parseValid(t, doc)
	// Two rounds, then silence is reported (no Digits) to the same action, which hangs up.
	wantVerbs(t, resp, "Gather", "Gather", "Redirect")
	action := base + "/twilio/screen-result?target=2"
	for i := range 2 {
		g := resp.Child(i)
		wantAttr(t, g, "numDigits", "1")
		wantAttr(t, g, "timeout", "5")
		wantAttr(t, g, "action", action)
		wantAttr(t, g, "method", "POST")
		wantSay(t, g.Child(0), "Call for Sales line from 1 5 5 5 9 8 7 0 0 0 0. "+twiml.MsgScreenPress, "fr-FR", "Polly.Celine")
	}
	if red := resp.Child(2); red.Text != action {
		t.Errorf("<Redirect> = %q, want %q", red.Text, action)
	}
	if bytes.Contains(doc, []byte("<Hangup")) {
		t.Errorf("the screen hangs up by itself: the silence would not be recorded\n%s", doc)
	}
}

func TestBuilder_ScreenAnnounce(t *testing.T) {
	r := routing(t, minimalJSON)
	doc, err := builder(t).ScreenAnnounce(r, masked, "anonymous")
	if err != nil {
		t.Fatal(err)
	}
	resp := parseValid(t, doc)
	wantVerbs(t, resp, "Say") // and nothing after: the end of the document bridges the leg
	wantSay(t, resp.Child(0), "Call for 1 5 5 5 1 2 3 0 0 0 0 from a withheld number.", "en-US", "")
}

// TestBuilder_Forward_screens checks each noun's url and machine detection: a phone screens by
// default, a SIP endpoint or client only when asked, and machine detection applies to phones.
func TestBuilder_Forward_screens(t *testing.T) {
	const targets = `"targets": [
		{"type": "phone", "to": "+15550001111"},
		{"type": "phone", "to": "+15550002222", "screen": "off"},
		{"type": "sip", "uri": "sip:desk@pbx.example.com"},
		{"type": "client", "identity": "dana", "screen": "announce"}]`
	tests := []struct {
		name    string
		amd     bool
		wantURL []bool
		wantAMD []bool
	}{
		{"defaults", false, []bool{true, false, false, true}, []bool{false, false, false, false}},
		{"machine detection", true, []bool{true, true, false, true}, []bool{true, true, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			js := edit(minimalJSON, targets)
			if tt.amd {
				js = edit(js, `"machine_detection": true`)
			}
			r := routing(t, js)
			doc, err := builder(t).ForwardCall(r, callrelay.PlanInbound(r), twiml.Inbound{CallSid: callSid, From: caller, To: masked})
			if err != nil {
				t.Fatal(err)
			}
			var gaps []twimltest.Gap
			if tt.amd {
				gaps = append(gaps, twimltest.GapNumberMachineDetection)
			}
			dial := parseValid(t, doc, gaps...).Find("Dial")
			for i, n := range dial.Children {
				want := base + "/twilio/screen?target=" + string(rune('0'+i))
				if got := n.HasAttr("url"); got != tt.wantURL[i] {
					t.Errorf("<%s> %d has url: %v, want %v", n.Name, i, got, tt.wantURL[i])
				} else if got {
					wantAttr(t, n, "url", want)
					wantAttr(t, n, "method", "POST")
				} else {
					wantNoAttr(t, n, "method")
				}
				if got := n.HasAttr("machineDetection"); got != tt.wantAMD[i] {
					t.Errorf("<%s> %d has machineDetection: %v, want %v", n.Name, i, got, tt.wantAMD[i])
				} else if got {
					wantAttr(t, n, "machineDetection", "Enable")
					wantAttr(t, n, "amdStatusCallback", base+"/twilio/screen-amd?call="+callSid+"&target="+string(rune('0'+i)))
				} else {
					wantNoAttr(t, n, "amdStatusCallback")
				}
			}
		})
	}
}

func TestScreen_golden(t *testing.T) {
	b := builder(t)
	must := func(doc []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return doc
	}
	plain := routing(t, minimalJSON)
	labelled := routing(t, edit(minimalJSON, `"label": "Sales line", "language": "fr-FR", "voice": "Polly.Celine"`))
	amd := routing(t, edit(minimalJSON, `"machine_detection": true, "targets": [{"type": "phone", "to": "+15550001111"}, {"type": "sip", "uri": "sip:desk@pbx.example.com", "screen": "press"}]`))
	tests := []struct {
		file string
		doc  []byte
		gaps []twimltest.Gap
	}{
		{"screen_press.xml", must(b.ScreenPress(plain, "", 0, masked, caller)), nil},
		{"screen_press_label_fr.xml", must(b.ScreenPress(labelled, "", 1, masked, "+266696687")), nil},
		{"screen_announce.xml", must(b.ScreenAnnounce(labelled, masked, caller)), nil},
		{"forward_screened_amd.xml", must(b.ForwardCall(amd, callrelay.PlanInbound(amd), twiml.Inbound{CallSid: callSid, From: caller, To: masked})), []twimltest.Gap{twimltest.GapNumberMachineDetection}},
		{"screen_wait.xml", must(b.ScreenWait("", 1, 0)), nil},
		{"conference_screen_press.xml", must(b.ScreenPress(plain, callSid, 0, masked, caller)), nil},
		{"conference_screen_wait.xml", must(b.ScreenWait(callSid, 1, 2)), nil},
		{"conference_join.xml", must(b.ConferenceJoin(plain, callSid, 0, "")), []twimltest.Gap{twimltest.GapConferenceParticipantLabel}},
		{"conference_join_announce.xml", must(b.ConferenceJoin(labelled, callSid, 2, twiml.ScreenLine(labelled, masked, caller))), []twimltest.Gap{twimltest.GapConferenceParticipantLabel}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) { checkGolden(t, tt.file, tt.doc, tt.gaps...) })
	}
}

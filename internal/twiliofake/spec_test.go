package twiliofake

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testSpec returns the default spec (the vendored one, or $TWILIO_OPENAPI's).
func testSpec(t testing.TB) *Spec {
	t.Helper()
	s, err := DefaultSpec()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const (
	acct  = DefaultAccountSID
	confA = "CF0123456789abcdef0123456789abcdef"
	callA = "CA0123456789abcdef0123456789abcdef"
	callB = "CAfedcba9876543210fedcba9876543210"
	queA  = "QU0123456789abcdef0123456789abcdef"
)

func TestOperationsCallrelayUses(t *testing.T) {
	s := testSpec(t)
	for _, tc := range []struct{ id, method, path string }{
		{"UpdateParticipant", "POST", "/2010-04-01/Accounts/{AccountSid}/Conferences/{ConferenceSid}/Participants/{CallSid}.json"},
		{"CreateParticipant", "POST", "/2010-04-01/Accounts/{AccountSid}/Conferences/{ConferenceSid}/Participants.json"},
		{"UpdateCall", "POST", "/2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json"},
		{"UpdateMember", "POST", "/2010-04-01/Accounts/{AccountSid}/Queues/{QueueSid}/Members/{CallSid}.json"},
		{"UpdateConference", "POST", "/2010-04-01/Accounts/{AccountSid}/Conferences/{Sid}.json"},
		{"DeleteQueue", "DELETE", "/2010-04-01/Accounts/{AccountSid}/Queues/{Sid}.json"},
		{"CreateQueue", "POST", "/2010-04-01/Accounts/{AccountSid}/Queues.json"},
	} {
		op, ok := s.Operation(tc.id)
		if !ok {
			t.Errorf("Operation(%q): not found", tc.id)
			continue
		}
		if op.Method != tc.method || op.Path != tc.path {
			t.Errorf("Operation(%q) = %s %s, want %s %s", tc.id, op.Method, op.Path, tc.method, tc.path)
		}
	}
	for id := range handlers {
		if _, ok := s.Operation(id); !ok {
			t.Errorf("handler for %q, which the spec does not have", id)
		}
	}
}

func TestMatch(t *testing.T) {
	s := testSpec(t)
	base := "/2010-04-01/Accounts/" + acct
	for _, tc := range []struct {
		name, method, path string
		wantOp             string // "" when no match
		wantParams         map[string]string
	}{
		{"participant by SID", "POST", base + "/Conferences/" + confA + "/Participants/" + callA + ".json", "UpdateParticipant",
			map[string]string{"AccountSid": acct, "ConferenceSid": confA, "CallSid": callA}},
		{"participant by escaped label", "POST", base + "/Conferences/" + confA + "/Participants/the%20callee%2Fx.json", "UpdateParticipant",
			map[string]string{"AccountSid": acct, "ConferenceSid": confA, "CallSid": "the callee/x"}},
		{"participants list", "POST", base + "/Conferences/my%20room/Participants.json", "CreateParticipant",
			map[string]string{"AccountSid": acct, "ConferenceSid": "my room"}},
		{"call", "POST", base + "/Calls/" + callA + ".json", "UpdateCall", map[string]string{"AccountSid": acct, "Sid": callA}},
		{"fetch call", "GET", base + "/Calls/" + callA + ".json", "FetchCall", map[string]string{"AccountSid": acct, "Sid": callA}},
		{"queue member Front", "POST", base + "/Queues/" + queA + "/Members/Front.json", "UpdateMember",
			map[string]string{"AccountSid": acct, "QueueSid": queA, "CallSid": "Front"}},
		{"delete queue", "DELETE", base + "/Queues/" + queA + ".json", "DeleteQueue", map[string]string{"AccountSid": acct, "Sid": queA}},
		{"literal beats parameter", "POST", base + "/IncomingPhoneNumbers/Local.json", "CreateIncomingPhoneNumberLocal",
			map[string]string{"AccountSid": acct}},
		{"parameter where no literal", "POST", base + "/IncomingPhoneNumbers/PN0123456789abcdef0123456789abcdef.json", "UpdateIncomingPhoneNumber",
			map[string]string{"AccountSid": acct, "Sid": "PN0123456789abcdef0123456789abcdef"}},
		{"literal path without the method", "DELETE", base + "/IncomingPhoneNumbers/Local.json", "", nil},
		{"no such method", "PUT", base + "/Calls/" + callA + ".json", "", nil},
		{"no such path", "POST", base + "/Nope.json", "", nil},
		{"no .json", "POST", base + "/Calls/" + callA, "", nil},
		{"empty parameter", "POST", base + "/Calls/.json", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op, params, ok := s.Match(tc.method, tc.path)
			if tc.wantOp == "" {
				if ok {
					t.Fatalf("Match(%s %s) = %s, want no match", tc.method, tc.path, op.ID)
				}
				return
			}
			if !ok {
				t.Fatalf("Match(%s %s): no match, want %s", tc.method, tc.path, tc.wantOp)
			}
			if op.ID != tc.wantOp {
				t.Errorf("Match(%s %s) = %s, want %s", tc.method, tc.path, op.ID, tc.wantOp)
			}
			if len(params) != len(tc.wantParams) {
				t.Errorf("params = %v, want %v", params, tc.wantParams)
			}
			for k, v := range tc.wantParams {
				if params[k] != v {
					t.Errorf("params[%s] = %q, want %q", k, params[k], v)
				}
			}
		})
	}
}

// want is a violation expected of Validate: where, field and keyword.
type want struct{ in, field, keyword string }

func TestValidate(t *testing.T) {
	s := testSpec(t)
	participant := map[string]string{"AccountSid": acct, "ConferenceSid": confA, "CallSid": callA}
	withParam := func(m map[string]string, k, v string) map[string]string {
		c := map[string]string{}
		for a, b := range m {
			c[a] = b
		}
		c[k] = v
		return c
	}
	callPath := map[string]string{"AccountSid": acct, "Sid": callA}
	createPath := map[string]string{"AccountSid": acct, "ConferenceSid": confA}
	fromTo := "From=%2B15005550006&To=%2B15005550001"
	for _, tc := range []struct {
		name string
		op   string
		path map[string]string
		form string // URL-encoded
		want []want
	}{
		// UpdateParticipant, as callrelay's Hold and KeepConference send it.
		{"hold", "UpdateParticipant", participant, "Hold=true&HoldUrl=https%3A%2F%2Fexample.com%2Fhold%3Fa%3D1&HoldMethod=GET", nil},
		{"resume", "UpdateParticipant", participant, "Hold=false", nil},
		{"keep conference", "UpdateParticipant", participant, "EndConferenceOnExit=false", nil},
		{"no fields", "UpdateParticipant", participant, "", nil},
		{"CallSid may be a label", "UpdateParticipant", withParam(participant, "CallSid", "the callee"), "Muted=true", nil},
		{"Hold=yes", "UpdateParticipant", participant, "Hold=yes", []want{{"body", "Hold", KeywordType}}},
		{"Hold=True", "UpdateParticipant", participant, "Hold=True", []want{{"body", "Hold", KeywordType}}},
		{"Hold empty", "UpdateParticipant", participant, "Hold=", []want{{"body", "Hold", KeywordType}}},
		{"HoldMethod=PUT", "UpdateParticipant", participant, "HoldMethod=PUT", []want{{"body", "HoldMethod", KeywordEnum}}},
		{"HoldMethod lower case", "UpdateParticipant", participant, "HoldMethod=get", []want{{"body", "HoldMethod", KeywordEnum}}},
		{"HoldUrl relative", "UpdateParticipant", participant, "HoldUrl=%2Fhold", []want{{"body", "HoldUrl", KeywordFormat}}},
		{"HoldUrl with a space", "UpdateParticipant", participant, "HoldUrl=https%3A%2F%2Fexample.com%2Fa+b", []want{{"body", "HoldUrl", KeywordFormat}}},
		{"HoldUrl without host", "UpdateParticipant", participant, "HoldUrl=mailto%3Ax", []want{{"body", "HoldUrl", KeywordFormat}}},
		{"HoldUrl bad escape", "UpdateParticipant", participant, "HoldUrl=https%3A%2F%2Fexample.com%2F%25zz", []want{{"body", "HoldUrl", KeywordFormat}}},
		{"Hold twice", "UpdateParticipant", participant, "Hold=true&Hold=false", []want{{"body", "Hold", KeywordDuplicate}}},
		{"unknown field", "UpdateParticipant", participant, "Bogus=1", []want{{"body", "Bogus", KeywordUnknown}}},
		{"field names are case-sensitive", "UpdateParticipant", participant, "hold=true", []want{{"body", "hold", KeywordUnknown}}},
		{"ConferenceSid must be a CF SID", "UpdateParticipant", withParam(participant, "ConferenceSid", "my room"), "Hold=true", []want{{"path", "ConferenceSid", KeywordPattern}}},
		{"AccountSid malformed", "UpdateParticipant", withParam(participant, "AccountSid", "ACxyz"), "", []want{{"path", "AccountSid", KeywordPattern}}},
		{"CallSidToCoach malformed", "UpdateParticipant", participant, "CallSidToCoach=CA1", []want{{"body", "CallSidToCoach", KeywordPattern}}},
		{"several at once", "UpdateParticipant", participant, "Muted=1&HoldMethod=PUT", []want{{"body", "HoldMethod", KeywordEnum}, {"body", "Muted", KeywordType}}},

		// CreateParticipant, as callrelay's CreateParticipant sends it.
		{"create", "CreateParticipant", createPath, fromTo + "&Label=callee-1&Beep=false&Timeout=20" +
			"&StatusCallback=https%3A%2F%2Fexample.com%2Fstatus&StatusCallbackMethod=POST" +
			"&StatusCallbackEvent=initiated&StatusCallbackEvent=ringing&StatusCallbackEvent=answered&StatusCallbackEvent=completed" +
			"&StartConferenceOnEnter=true&EndConferenceOnExit=true&CallToken=tok&SipAuthUsername=u&SipAuthPassword=p", nil},
		{"ConferenceSid may be a friendly name", "CreateParticipant", withParam(createPath, "ConferenceSid", "my room"), fromTo, nil},
		{"From and To missing", "CreateParticipant", createPath, "Label=x", []want{{"body", "From", KeywordRequired}, {"body", "To", KeywordRequired}}},
		{"To missing", "CreateParticipant", createPath, "From=%2B15005550006", []want{{"body", "To", KeywordRequired}}},
		{"empty To is present", "CreateParticipant", createPath, "From=x&To=", nil},
		{"Timeout not an integer", "CreateParticipant", createPath, fromTo + "&Timeout=20s", []want{{"body", "Timeout", KeywordType}}},
		{"Beep is a free string in the spec", "CreateParticipant", createPath, fromTo + "&Beep=onEnter", nil},
		{"StatusCallbackEvent items have no enum in the spec", "CreateParticipant", createPath, fromTo + "&StatusCallbackEvent=whenever", nil},
		{"Label twice", "CreateParticipant", createPath, fromTo + "&Label=a&Label=b", []want{{"body", "Label", KeywordDuplicate}}},
		{"StatusCallback not a URL", "CreateParticipant", createPath, fromTo + "&StatusCallback=example.com%2Fstatus", []want{{"body", "StatusCallback", KeywordFormat}}},

		// UpdateCall, as callrelay's Redirect and EndCall send it.
		{"redirect", "UpdateCall", callPath, "Url=https%3A%2F%2Fexample.com%2Ftwiml&Method=POST", nil},
		{"cancel", "UpdateCall", callPath, "Status=canceled", nil},
		{"complete", "UpdateCall", callPath, "Status=completed", nil},
		{"Status not an update status", "UpdateCall", callPath, "Status=in-progress", []want{{"body", "Status", KeywordEnum}}},
		{"Sid malformed", "UpdateCall", withParam(callPath, "Sid", "XX123"), "Status=completed", []want{{"path", "Sid", KeywordPattern}}},
		{"Sid lower-case prefix", "UpdateCall", withParam(callPath, "Sid", "ca0123456789abcdef0123456789abcdef"), "", []want{{"path", "Sid", KeywordPattern}}},
		{"TimeLimit not an integer", "UpdateCall", callPath, "TimeLimit=1.5", []want{{"body", "TimeLimit", KeywordType}}},

		// Queues and conferences.
		{"dequeue front", "UpdateMember", map[string]string{"AccountSid": acct, "QueueSid": queA, "CallSid": "Front"}, "Url=https%3A%2F%2Fexample.com%2Fx&Method=POST", nil},
		{"dequeue without Url", "UpdateMember", map[string]string{"AccountSid": acct, "QueueSid": queA, "CallSid": callA}, "Method=POST", []want{{"body", "Url", KeywordRequired}}},
		{"QueueSid malformed", "UpdateMember", map[string]string{"AccountSid": acct, "QueueSid": "QQ1", "CallSid": callA}, "Url=https%3A%2F%2Fexample.com", []want{{"path", "QueueSid", KeywordPattern}}},
		{"end conference", "UpdateConference", map[string]string{"AccountSid": acct, "Sid": confA}, "Status=completed", nil},
		{"UpdateConference Sid is free in the spec", "UpdateConference", map[string]string{"AccountSid": acct, "Sid": "my room"}, "Status=completed", nil},
		{"conference Status", "UpdateConference", map[string]string{"AccountSid": acct, "Sid": confA}, "Status=in-progress", []want{{"body", "Status", KeywordEnum}}},
		{"create queue", "CreateQueue", map[string]string{"AccountSid": acct}, "FriendlyName=q&MaxSize=10", nil},
		{"create queue without name", "CreateQueue", map[string]string{"AccountSid": acct}, "MaxSize=10", []want{{"body", "FriendlyName", KeywordRequired}}},
		{"delete queue", "DeleteQueue", map[string]string{"AccountSid": acct, "Sid": queA}, "", nil},
		{"delete queue by name", "DeleteQueue", map[string]string{"AccountSid": acct, "Sid": "support"}, "", []want{{"path", "Sid", KeywordPattern}}},

		// Query parameters of a GET.
		{"list page", "ListQueue", map[string]string{"AccountSid": acct}, "PageSize=50&Page=0", nil},
		{"PageSize 0", "ListQueue", map[string]string{"AccountSid": acct}, "PageSize=0", []want{{"query", "PageSize", KeywordMinimum}}},
		{"PageSize 1001", "ListQueue", map[string]string{"AccountSid": acct}, "PageSize=1001", []want{{"query", "PageSize", KeywordMaximum}}},
		{"unknown query parameter", "ListQueue", map[string]string{"AccountSid": acct}, "Foo=1", []want{{"query", "Foo", KeywordUnknown}}},
		{"date-time query", "ListCall", map[string]string{"AccountSid": acct}, "StartTime%3E=2024-05-01T10%3A00%3A00Z", nil},
		{"date-time query without zone", "ListCall", map[string]string{"AccountSid": acct}, "StartTime%3E=2024-05-01", []want{{"query", "StartTime>", KeywordFormat}}},

		// An array whose items have an enum ($ref), repeated (style form, explode true).
		{"array items valid", "UpdateConnectApp", map[string]string{"AccountSid": acct, "Sid": "CN0123456789abcdef0123456789abcdef"}, "Permissions=get-all&Permissions=post-all", nil},
		{"array item invalid", "UpdateConnectApp", map[string]string{"AccountSid": acct, "Sid": "CN0123456789abcdef0123456789abcdef"}, "Permissions=get-all&Permissions=delete-all", []want{{"body", "Permissions", KeywordEnum}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op, ok := s.Operation(tc.op)
			if !ok {
				t.Fatalf("no operation %s", tc.op)
			}
			form, err := url.ParseQuery(tc.form)
			if err != nil {
				t.Fatal(err)
			}
			got := op.Validate(tc.path, form)
			if len(got) != len(tc.want) {
				t.Fatalf("Validate(%v, %q) = %v, want %d violations %v", tc.path, tc.form, got, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if g := got[i]; g.In != w.in || g.Field != w.field || g.Keyword != w.keyword || g.Operation != tc.op {
					t.Errorf("violation %d = %+v, want %s %s %s of %s", i, g, w.in, w.field, w.keyword, tc.op)
				}
			}
		})
	}
}

func TestViolationCodesAndText(t *testing.T) {
	s := testSpec(t)
	op, _ := s.Operation("UpdateParticipant")
	got := op.Validate(map[string]string{"AccountSid": acct, "ConferenceSid": confA, "CallSid": callA},
		url.Values{"Hold": {"yes"}, "HoldUrl": {"/hold"}, "Extra": {"1"}})
	wantErrs := []struct {
		code int
		text string
	}{
		{CodeInvalidParameter, `UpdateParticipant: body field Extra="1": is not a parameter of UpdateParticipant`},
		{CodeInvalidParameter, `UpdateParticipant: body field Hold="yes": must be "true" or "false" (boolean)`},
		{CodeInvalidURL, `UpdateParticipant: body field HoldUrl="/hold": must be an absolute URI, with scheme and host (format uri)`},
	}
	if len(got) != len(wantErrs) {
		t.Fatalf("got %d violations %v, want %d", len(got), got, len(wantErrs))
	}
	for i, w := range wantErrs {
		if got[i].Code != w.code || got[i].Error() != w.text {
			t.Errorf("violation %d = code %d %q, want code %d %q", i, got[i].Code, got[i].Error(), w.code, w.text)
		}
	}
	if m := got[1].message(); m != `Hold: must be "true" or "false" (boolean)` {
		t.Errorf("message() = %q", m)
	}
}

func TestLoadDefaultSpec(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir) // nothing on disk to find: the vendored spec is embedded

	t.Setenv(SpecEnv, "")
	s, err := loadDefaultSpec()
	if err != nil {
		t.Fatalf("embedded spec: %v", err)
	}
	if _, ok := s.Operation("UpdateParticipant"); !ok {
		t.Error("embedded spec: no UpdateParticipant")
	}

	other := filepath.Join(dir, "other.json")
	if err := os.WriteFile(other, []byte(`{"paths":{"/a.json":{"get":{"operationId":"OnlyThis"}}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(SpecEnv, other)
	s, err = loadDefaultSpec()
	if err != nil {
		t.Fatalf("$%s=%s: %v", SpecEnv, other, err)
	}
	if _, ok := s.Operation("OnlyThis"); !ok {
		t.Errorf("$%s=%s: not the spec loaded", SpecEnv, other)
	}

	t.Setenv(SpecEnv, filepath.Join(dir, "missing.json"))
	if _, err := loadDefaultSpec(); err == nil || !strings.Contains(err.Error(), "$"+SpecEnv) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("$%s naming a missing file: err = %v, want one naming $%s and wrapping os.ErrNotExist", SpecEnv, err, SpecEnv)
	}
}

func TestLoadSpecErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, json, want string }{
		{"not JSON", `{`, "decoding JSON"},
		{"no paths", `{"paths":{}}`, "no paths"},
		{"dangling ref", `{"paths":{"/a/{X}.json":{"post":{"operationId":"A","parameters":[{"name":"X","in":"path","schema":{"$ref":"#/components/schemas/nope"}}]}}}}`, "no such schema"},
		{"bad pattern", `{"paths":{"/a.json":{"get":{"operationId":"A","parameters":[{"name":"X","in":"query","schema":{"type":"string","pattern":"(?<x>"}}]}}}}`, "pattern"},
		{"JSON body", `{"paths":{"/a.json":{"post":{"operationId":"A","requestBody":{"content":{"application/json":{"schema":{"type":"object"}}}}}}}}`, "not application/x-www-form-urlencoded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".json")
			if err := os.WriteFile(p, []byte(tc.json), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadSpec(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("LoadSpec = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

package callrelay_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/callrelay/callrelay/internal/callrelay"
)

const notifyBase = `{"owner_email":"dana@example.com","targets":[{"type":"phone","to":"+15550001111"}]`

func TestNotifyDefaults(t *testing.T) {
	for _, tc := range []struct {
		notify      string
		wantMissed  bool
		wantHooks   int
		wantPresent bool
	}{
		{"", true, 0, false},
		{`,"notify":{}`, true, 0, true},
		{`,"notify":{"missed_calls":false}`, false, 0, true},
		{`,"notify":{"webhooks":["https://hooks.example.com/callrelay?team=sales","https://crm.example.com:8443/in"]}`, true, 2, true},
	} {
		rt, err := callrelay.DecodeRouting(strings.NewReader(notifyBase + tc.notify + "}"))
		if err != nil {
			t.Fatalf("%s: %v", tc.notify, err)
		}
		if rt.MissedCallEmails() != tc.wantMissed || len(rt.EventWebhooks()) != tc.wantHooks || (rt.Notify != nil) != tc.wantPresent {
			t.Errorf("%s: missed %v, hooks %v, notify %+v", tc.notify, rt.MissedCallEmails(), rt.EventWebhooks(), rt.Notify)
		}
	}
	// A routing stored before notify existed reads as the defaults.
	var stored callrelay.Routing
	if err := json.Unmarshal([]byte(notifyBase+`,"mode":"direct","enabled":true}`), &stored); err != nil {
		t.Fatal(err)
	}
	if !stored.MissedCallEmails() || stored.EventWebhooks() != nil {
		t.Errorf("stored routing without notify: missed %v, hooks %v", stored.MissedCallEmails(), stored.EventWebhooks())
	}
}

func TestNotifyInvalid(t *testing.T) {
	long := "https://hooks.example.com/" + strings.Repeat("a", callrelay.MaxWebhookURLLen)
	six := `"https://a.example.com/1","https://a.example.com/2","https://a.example.com/3","https://a.example.com/4","https://a.example.com/5","https://a.example.com/6"`
	for _, tc := range []struct{ notify, field string }{
		{`{"missed_calls":"yes"}`, "notify.missed_calls"},
		{`{"webhooks":["http://hooks.example.com/"]}`, "notify.webhooks[0]"},
		{`{"webhooks":["https://hooks.example.com/","hooks.example.com"]}`, "notify.webhooks[1]"},
		{`{"webhooks":["https://user:pw@hooks.example.com/"]}`, "notify.webhooks[0]"},
		{`{"webhooks":["https://hooks.example.com/#frag"]}`, "notify.webhooks[0]"},
		{`{"webhooks":[""]}`, "notify.webhooks[0]"},
		{`{"webhooks":["https:///path"]}`, "notify.webhooks[0]"},
		{`{"webhooks":["https://hooks.example.com/ x"]}`, "notify.webhooks[0]"},
		{`{"webhooks":["` + long + `"]}`, "notify.webhooks[0]"},
		{`{"webhooks":["https://a.example.com/","https://a.example.com/"]}`, "notify.webhooks[1]"},
		{`{"webhooks":[` + six + `]}`, "notify.webhooks"},
		{`{"email":true}`, "email"}, // as every unknown field is named: by its own name
	} {
		_, err := callrelay.DecodeRouting(strings.NewReader(notifyBase + `,"notify":` + tc.notify + "}"))
		var e *callrelay.Error
		if err == nil {
			t.Errorf("%s: accepted", tc.notify)
		} else if !asError(err, &e) || e.Code != callrelay.EINVALID || e.Field != tc.field {
			t.Errorf("%s: %v (field %q), want invalid %s", tc.notify, err, fieldOf(err), tc.field)
		}
	}
}

func asError(err error, e **callrelay.Error) bool {
	ce, ok := err.(*callrelay.Error)
	*e = ce
	return ok
}

func fieldOf(err error) string {
	if ce, ok := err.(*callrelay.Error); ok {
		return ce.Field
	}
	return ""
}

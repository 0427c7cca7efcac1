package app_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/callrelay/callrelay/internal/twiliosim"
)

// checkEmailCounts counts, on the scenario's own SMTP server, the emails of each kind: a
// scenario that expects a voicemail email or a missed-call email got exactly one, and one that
// expects none got none.
func checkEmailCounts(t *testing.T, r *relay, sc *twiliosim.Scenario) {
	t.Helper()
	var voicemails, missed int
	for _, m := range r.smtp.Received() {
		head, _, _ := bytes.Cut(m.Data, []byte("\r\n\r\n"))
		if bytes.Contains(head, []byte("\nX-Callrelay-Voicemail:")) {
			voicemails++
		}
		if bytes.Contains(head, []byte("\nX-Callrelay-Missed-Call:")) {
			missed++
		}
	}
	if v := sc.Expect.Voicemail; v != nil {
		want := map[string]int{"sent": 1, "none": 0}[v.Email]
		if (v.Email == "sent" || v.Email == "none") && voicemails != want {
			t.Errorf("%d voicemail emails, want %d", voicemails, want)
		}
	}
	if mc := sc.Expect.MissedCall; mc != nil {
		want := map[string]int{"sent": 1, "none": 0}[mc.Email]
		if missed != want {
			t.Errorf("%d missed-call emails, want %d", missed, want)
		}
	}
}

// TestMissedCallExpectations checks the checker: a missed call that a scenario expects to be
// something else fails it, naming what differed, and the emails are counted.
func TestMissedCallExpectations(t *testing.T) {
	for _, tc := range []struct{ expect, want string }{
		{"{email: none}", "call outcome missed, want not missed"},
		{"{email: sent, stage: prompt}", `missed call stage "ringing", want "prompt"`},
	} {
		t.Run(tc.expect, func(t *testing.T) {
			t.Parallel()
			sc, err := twiliosim.ParseScenario([]byte(`
name: wrong missed-call expectations
number: "+15551230098"
routing:
  owner_email: dana@example.com
  targets: [{type: phone, to: "+15550001111"}]
caller:
  hangup_at: 3
expect:
  missed_call: ` + tc.expect + `
`))
			if err != nil {
				t.Fatal(err)
			}
			r := startRelay(t)
			res := playScenario(t, r, sc, 10*time.Second)
			all := strings.Join(res.Failures, "\n")
			if !strings.Contains(all, tc.want) {
				t.Errorf("failures do not mention %q:\n%s", tc.want, all)
			}
		})
	}
}

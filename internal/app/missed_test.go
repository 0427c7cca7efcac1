package app_test

import (
	"bytes"
	"testing"

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

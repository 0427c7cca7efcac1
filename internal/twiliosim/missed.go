package twiliosim

import (
	"fmt"
	"strings"
)

// ExpectMissedCall is what callrelay must have decided about the call once it ended.
type ExpectMissedCall struct {
	// Email: "sent" — the call was missed and exactly one missed-call email went (its
	// timeline has one missed-call-email entry "sent"); "none" — the call was decided not
	// missed (answered, voicemail), and no missed-call email was queued.
	Email string `yaml:"email"`
	// Stage is how far a missed call got: ringing, greeting, prompt, silence.
	Stage string `yaml:"stage"`
}

func (e *ExpectMissedCall) check() error {
	if e == nil {
		return nil
	}
	if e.Email != "sent" && e.Email != "none" {
		return fmt.Errorf("expect.missed_call.email: %q: want sent or none", e.Email)
	}
	if e.Stage != "" && e.Email != "sent" {
		return fmt.Errorf("expect.missed_call.stage: only for a missed call (email: sent)")
	}
	return nil
}

// apiEvent is a timeline entry as the ops API shows it.
type apiEvent struct {
	Type    string         `json:"type"`
	Outcome string         `json:"outcome"`
	Detail  map[string]any `json:"detail"`
}

// missedProblems lists how the call's timeline differs from the missed-call expectation.
func missedProblems(ex *ExpectMissedCall, events []apiEvent) []string {
	var outcome *apiEvent
	var emails []string
	for i, e := range events {
		switch e.Type {
		case "outcome":
			outcome = &events[i]
		case "missed-call-email":
			emails = append(emails, e.Outcome)
		}
	}
	if outcome == nil {
		return []string{"callrelay has not decided the call's outcome yet"}
	}
	var problems []string
	sent := 0
	for _, o := range emails {
		if o == "sent" {
			sent++
		}
	}
	switch ex.Email {
	case "sent":
		if outcome.Outcome != "missed" {
			problems = append(problems, fmt.Sprintf("call outcome %q, want missed", outcome.Outcome))
		}
		if sent != 1 {
			problems = append(problems, fmt.Sprintf("missed-call email entries %q: want exactly one sent", emails))
		}
		if stage, _ := outcome.Detail["stage"].(string); ex.Stage != "" && stage != ex.Stage {
			problems = append(problems, fmt.Sprintf("missed call stage %q, want %q", stage, ex.Stage))
		}
	case "none":
		if outcome.Outcome == "missed" {
			problems = append(problems, "call outcome missed, want not missed")
		}
		if len(emails) > 0 {
			problems = append(problems, fmt.Sprintf("missed-call email entries %s, want none", strings.Join(emails, ", ")))
		}
	}
	return problems
}

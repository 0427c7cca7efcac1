package callrelay_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/callrelay/callrelay/internal/callrelay"
)

const recRouting = `{"owner_email":"dana@example.com","targets":[{"type":"phone","to":"+15550001111"}]`

func TestRouting_Recordings(t *testing.T) {
	for _, c := range []struct {
		voicemail  string
		format     string
		deletes    bool
		retention  *int // nil: the instance's
		errorField string
	}{
		{"", callrelay.FormatMP3, true, nil, ""},
		{`{}`, callrelay.FormatMP3, true, nil, ""},
		{`{"format":"wav","delete_at_twilio":false,"retention_days":30}`, callrelay.FormatWAV, false, ptr(30), ""},
		{`{"format":"mp3","delete_at_twilio":true,"retention_days":0}`, callrelay.FormatMP3, true, ptr(0), ""},
		{`{"retention_days":36500}`, callrelay.FormatMP3, true, ptr(36500), ""},
		{`{"format":"ogg"}`, "", false, nil, "voicemail.format"},
		{`{"format":"WAV"}`, "", false, nil, "voicemail.format"},
		{`{"retention_days":-1}`, "", false, nil, "voicemail.retention_days"},
		{`{"retention_days":36501}`, "", false, nil, "voicemail.retention_days"},
		{`{"delete_at_twilio":"yes"}`, "", false, nil, "voicemail.delete_at_twilio"},
	} {
		body := recRouting + "}"
		if c.voicemail != "" {
			body = recRouting + `,"voicemail":` + c.voicemail + "}"
		}
		r, err := callrelay.DecodeRouting(strings.NewReader(body))
		if c.errorField != "" {
			var e *callrelay.Error
			if !errors.As(err, &e) || e.Code != callrelay.EINVALID || e.Field != c.errorField {
				t.Errorf("%s: err %v, want invalid %s", c.voicemail, err, c.errorField)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.voicemail, err)
		}
		v := r.Voicemail
		if v.RecordingFormat() != c.format || v.DeletesAtTwilio() != c.deletes || (v.RetentionDays == nil) != (c.retention == nil) ||
			(c.retention != nil && *v.RetentionDays != *c.retention) {
			t.Errorf("%s: format %s deletes %v retention %v", c.voicemail, v.RecordingFormat(), v.DeletesAtTwilio(), v.RetentionDays)
		}
	}
}

// A routing stored before the fields existed reads as MP3, deleted at Twilio, the instance's
// retention.
func TestRouting_RecordingsStoredBefore(t *testing.T) {
	var r callrelay.Routing
	if err := json.Unmarshal([]byte(recRouting+`,"voicemail":{"enabled":true,"max_length_seconds":120,"transcribe":true}}`), &r); err != nil {
		t.Fatal(err)
	}
	if r.Voicemail.RecordingFormat() != callrelay.FormatMP3 || !r.Voicemail.DeletesAtTwilio() || r.Voicemail.RetentionDays != nil {
		t.Errorf("old routing: %+v", r.Voicemail)
	}
}

func ptr(n int) *int { return &n }

package postgres_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/events"
	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/voicemail"
)

// storedEvents returns the call's events by type, and how many delivery jobs each has.
func storedEvents(t *testing.T, db *postgres.DB, callSid string) map[string]int {
	t.Helper()
	rows, err := db.Pool().Query(context.Background(), `
		SELECT e.type, (SELECT count(*) FROM river_job j WHERE j.kind = 'deliver_event' AND j.args->>'event_id' = e.id)
		FROM events e WHERE e.call_sid = $1`, callSid)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]int{}
	for rows.Next() {
		var typ string
		var jobs int
		if err := rows.Scan(&typ, &jobs); err != nil {
			t.Fatal(err)
		}
		if _, dup := got[typ]; dup {
			t.Errorf("event %s written twice", typ)
		}
		got[typ] = jobs
	}
	return got
}

// newEventsDB is newVoicemailDB whose queue (never started) also takes event deliveries, with
// events on and the instance's endpoints.
func newEventsDB(t *testing.T, routingJSON string, on bool, endpoints ...string) *postgres.DB {
	t.Helper()
	db, _, _ := newVoicemailDB(t, routingJSON)
	signer, err := events.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	n := voicemail.NewNotifier(db, nil, nil, nil, "callrelay@example.com", db.Now, slog.New(slog.DiscardHandler))
	client, err := voicemail.NewQueue(db.Pool(), n, voicemail.QueueOptions{FetchPollInterval: 100 * time.Millisecond, Now: db.Now},
		events.NewDeliverer(db, signer, events.Options{Now: db.Now}).Register)
	if err != nil {
		t.Fatal(err)
	}
	db.Jobs = client
	db.Notices = postgres.Notices{Events: on, Endpoints: endpoints}
	return db
}

const hookRouting = `{"owner_email":"dana@example.com","targets":[{"type":"phone","to":"+15550001111"}],
	"notify":{"webhooks":["https://crm.example.com/in","https://events.example.com/all"]}}`

// TestEventsVoicemail: a voicemail and its transcript are told once each, to the number's
// endpoints and the instance's (an endpoint listed by both gets one delivery), in the
// transactions that store them; repeated callbacks tell nothing more.
func TestEventsVoicemail(t *testing.T) {
	db := newEventsDB(t, hookRouting, true, "https://events.example.com/all", "https://ops.example.com/")
	ctx := context.Background()
	sid, rec := "CA"+"00000000000000000000000000000c01", "RE"+"00000000000000000000000000000c01"
	vmStartCall(t, db, sid)
	for range 2 {
		if _, err := db.RecordRecording(ctx, vmRecording(sid, rec, 9), vmWait); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := db.RecordTranscription(ctx, callrelay.Transcription{CallSid: sid, RecordingSid: rec,
			TranscriptionSid: "TR" + "00000000000000000000000000000c01", Status: "completed", Text: "Call me back."}); err != nil {
			t.Fatal(err)
		}
	}
	got := storedEvents(t, db, sid)
	if len(got) != 2 || got[callrelay.EventVoicemailCreated] != 3 || got[callrelay.EventVoicemailTranscribed] != 3 {
		t.Errorf("events (deliveries) %v, want voicemail.created and voicemail.transcribed, 3 deliveries each", got)
	}
	var body []byte
	if err := db.Pool().QueryRow(ctx, `SELECT body FROM events WHERE type = 'voicemail.transcribed'`).Scan(&body); err != nil {
		t.Fatal(err)
	}
	var e struct {
		Type string                       `json:"type"`
		Data callrelay.VoicemailEventData `json:"data"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatal(err)
	}
	if e.Type != callrelay.EventVoicemailTranscribed || e.Data.Transcript == nil || *e.Data.Transcript != "Call me back." ||
		e.Data.RecordingSid != rec || e.Data.DurationSeconds != 9 || e.Data.From != vmCaller {
		t.Errorf("voicemail.transcribed body %s", body)
	}
}

// TestEventsEarlyTranscript: a transcript that overtook its recording-status is told with
// the voicemail.
func TestEventsEarlyTranscript(t *testing.T) {
	db := newEventsDB(t, hookRouting, true)
	ctx := context.Background()
	sid, rec := "CA"+"00000000000000000000000000000c02", "RE"+"00000000000000000000000000000c02"
	vmStartCall(t, db, sid)
	if err := db.RecordTranscription(ctx, callrelay.Transcription{CallSid: sid, RecordingSid: rec,
		TranscriptionSid: "TR" + "00000000000000000000000000000c02", Status: "completed", Text: "Early."}); err != nil {
		t.Fatal(err)
	}
	if got := storedEvents(t, db, sid); len(got) != 0 {
		t.Fatalf("events before the voicemail exists: %v", got)
	}
	if _, err := db.RecordRecording(ctx, vmRecording(sid, rec, 9), vmWait); err != nil {
		t.Fatal(err)
	}
	if got := storedEvents(t, db, sid); len(got) != 2 || got[callrelay.EventVoicemailTranscribed] != 2 {
		t.Errorf("events (deliveries) %v, want voicemail.created and voicemail.transcribed to the 2 endpoints", got)
	}
}

// TestEventsMissedAndOff: call.missed goes with the decision; without Events (no secret
// configured) nothing is written even though the number lists endpoints.
func TestEventsMissedAndOff(t *testing.T) {
	ctx := context.Background()
	for _, on := range []bool{true, false} {
		db := newEventsDB(t, hookRouting, on)
		vmStartCall(t, db, missedSid)
		endCall(t, db, missedSid, "completed", t0.Add(4*time.Second))
		for range 2 {
			if _, err := db.DecideOutcome(ctx, missedSid); err != nil {
				t.Fatal(err)
			}
		}
		got := storedEvents(t, db, missedSid)
		if on && (len(got) != 1 || got[callrelay.EventCallMissed] != 2) {
			t.Errorf("events on: %v, want call.missed to 2 endpoints", got)
		}
		if !on && len(got) != 0 {
			t.Errorf("events off: %v, want none", got)
		}
	}
}

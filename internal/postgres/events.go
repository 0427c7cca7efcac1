package postgres

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/callrelay/callrelay/internal/callrelay"
)

// emitEvent writes an event, once per dedupeKey, and in the same transaction one delivery job
// per endpoint: the instance's (Notices.Endpoints) and the number's. Without endpoints nothing
// is written.
func (db *DB) emitEvent(ctx context.Context, tx pgx.Tx, typ, callSid, dedupeKey string, rt callrelay.Routing, data any) error {
	if !db.Notices.Events {
		return nil
	}
	endpoints := slices.Clone(db.Notices.Endpoints)
	for _, u := range rt.EventWebhooks() {
		if !slices.Contains(endpoints, u) {
			endpoints = append(endpoints, u)
		}
	}
	if len(endpoints) == 0 {
		return nil
	}
	if db.Jobs == nil {
		return errors.New("emit event: no job queue configured")
	}
	now := db.now()
	body, err := json.Marshal(callrelay.EventBody{Type: typ, Timestamp: now, Data: data})
	if err != nil {
		return fmt.Errorf("emit %s: %w", typ, err)
	}
	id := newEventID()
	tag, err := tx.Exec(ctx, `
		INSERT INTO events (id, type, call_sid, dedupe_key, body, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (dedupe_key) DO NOTHING`, id, typ, callSid, dedupeKey, string(body), now)
	if err != nil {
		return fmt.Errorf("emit %s: %w", typ, err)
	}
	if tag.RowsAffected() == 0 {
		return nil // a repeat of a fact already told
	}
	for _, u := range endpoints {
		if _, err := db.Jobs.InsertTx(ctx, tx, callrelay.DeliverEvent{EventID: id, URL: u},
			&river.InsertOpts{MaxAttempts: notifyMaxAttempts}); err != nil {
			return fmt.Errorf("emit %s: enqueue delivery: %w", typ, err)
		}
	}
	return nil
}

// newEventID returns a webhook-id: msg_ and 26 random base32 characters.
func newEventID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return "msg_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// GetEvent returns a stored event, or ENOTFOUND.
func (db *DB) GetEvent(ctx context.Context, id string) (*callrelay.StoredEvent, error) {
	var e callrelay.StoredEvent
	var body string
	err := db.pool.QueryRow(ctx, `SELECT id, type, call_sid, body, created_at FROM events WHERE id = $1`, id).
		Scan(&e.ID, &e.Type, &e.CallSid, &body, &e.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, callrelay.Errorf(callrelay.ENOTFOUND, "Event %s is unknown.", id)
	} else if err != nil {
		return nil, fmt.Errorf("get event %s: %w", id, err)
	}
	e.Body, e.CreatedAt = []byte(body), e.CreatedAt.UTC()
	return &e, nil
}

// RecordDelivery puts one delivery attempt of an event on its call's timeline.
func (db *DB) RecordDelivery(ctx context.Context, e *callrelay.StoredEvent, endpoint, outcome string, attempt int, deliverErr error) error {
	detail := map[string]any{"event_id": e.ID, "event": e.Type, "endpoint": endpoint, "attempt": attempt}
	if deliverErr != nil {
		detail["error"] = deliverErr.Error()
	}
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		return insertEvent(ctx, tx, e.CallSid, db.now(), "event", "", "callrelay", outcome, detail, "")
	})
	if err != nil {
		return fmt.Errorf("record delivery of %s: %w", e.ID, err)
	}
	return nil
}

// voicemailEventData is a voicemail as its events tell it.
func voicemailEventData(vm *callrelay.Voicemail) callrelay.VoicemailEventData {
	return callrelay.VoicemailEventData{
		VoicemailID: vm.ID, CallSid: vm.CallSid, Number: vm.Number, From: vm.From, RecordingSid: vm.RecordingSid,
		DurationSeconds: vm.DurationSeconds, RecordedAt: vm.RecordedAt, TranscriptStatus: vm.TranscriptStatus,
		Transcript: vm.Transcript,
	}
}

// emitVoicemailEvent tells a voicemail's creation or transcription (by recording), once each.
func (db *DB) emitVoicemailEvent(ctx context.Context, tx pgx.Tx, typ, recordingSid string) error {
	if !db.Notices.Events {
		return nil
	}
	vm, err := getVoicemail(ctx, tx, `recording_sid = $1`, recordingSid)
	if err != nil {
		return fmt.Errorf("emit %s: %w", typ, err)
	}
	var routing []byte
	if err := tx.QueryRow(ctx, `SELECT routing FROM calls WHERE call_sid = $1`, vm.CallSid).Scan(&routing); err != nil {
		return fmt.Errorf("emit %s: %w", typ, err)
	}
	rt, err := decodeRouting(routing)
	if err != nil {
		return fmt.Errorf("emit %s: %w", typ, err)
	}
	return db.emitEvent(ctx, tx, typ, vm.CallSid, typ+":"+vm.RecordingSid, rt, voicemailEventData(vm))
}

// emitVoicemailEvents tells a new voicemail, and its transcript when one that arrived early
// was applied with it.
func (db *DB) emitVoicemailEvents(ctx context.Context, tx pgx.Tx, recordingSid string, earlyApplied bool) error {
	if err := db.emitVoicemailEvent(ctx, tx, callrelay.EventVoicemailCreated, recordingSid); err != nil {
		return err
	}
	if !earlyApplied {
		return nil
	}
	var status string
	if err := tx.QueryRow(ctx, `SELECT transcript_status FROM voicemails WHERE recording_sid = $1`, recordingSid).Scan(&status); err != nil {
		return fmt.Errorf("emit %s: %w", callrelay.EventVoicemailTranscribed, err)
	}
	if status != callrelay.TranscriptCompleted {
		return nil
	}
	return db.emitVoicemailEvent(ctx, tx, callrelay.EventVoicemailTranscribed, recordingSid)
}

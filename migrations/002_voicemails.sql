-- A voicemail: written when Twilio reports the recording complete (the audio exists only then).
-- The notify_* columns make the owner's one email exactly once: a worker claims the row,
-- sends, and marks it sent; a claim older than the lease may be taken over after a crash.
CREATE TABLE voicemails (
    id                bigserial PRIMARY KEY,
    call_sid          text NOT NULL REFERENCES calls (call_sid) ON DELETE CASCADE,
    recording_sid     text NOT NULL UNIQUE,
    recording_url     text NOT NULL,
    number            text NOT NULL,
    from_number       text NOT NULL,
    owner_email       text NOT NULL,
    duration_seconds  int NOT NULL,
    recorded_at       timestamptz NOT NULL,
    -- pending (asked, not arrived), completed, failed, or why none was asked:
    -- off, language, too_short, too_long.
    transcript_status text NOT NULL,
    transcript        text,
    transcription_sid text,
    transcribed_at    timestamptz,
    notify_status     text NOT NULL DEFAULT 'pending', -- pending, sending, sent, failed
    notify_attempts   int NOT NULL DEFAULT 0,
    notify_last_error text,
    notify_claimed_at timestamptz,
    notified_at       timestamptz,
    job_id            bigint,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);
CREATE INDEX voicemails_number_created_idx ON voicemails (number, created_at DESC, id DESC);
CREATE INDEX voicemails_created_idx ON voicemails (created_at DESC, id DESC);

-- Transcriptions that arrived before their recording-status: kept until the voicemail exists.
CREATE TABLE early_transcriptions (
    recording_sid     text PRIMARY KEY,
    call_sid          text NOT NULL,
    status            text NOT NULL,
    transcript        text,
    transcription_sid text,
    received_at       timestamptz NOT NULL
);

-- How each ended call turned out, decided once (call_outcomes' primary key): answered,
-- voicemail, missed or rejected. A missed call's email has the voicemail email's claim
-- columns: a worker claims the row, sends, and marks it sent.
CREATE TABLE call_outcomes (
    call_sid          text PRIMARY KEY REFERENCES calls (call_sid) ON DELETE CASCADE,
    outcome           text NOT NULL,
    stage             text,             -- missed: ringing, greeting, prompt, silence
    waited_seconds    int,
    owner_email       text NOT NULL,
    notify_status     text NOT NULL,    -- off, pending, sending, sent, failed
    notify_attempts   int NOT NULL DEFAULT 0,
    notify_last_error text,
    notify_claimed_at timestamptz,
    notified_at       timestamptz,
    decided_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);

-- Events for webhook endpoints: the body is kept as sent (signed bytes), once per fact
-- (dedupe_key), and delivered by one job per endpoint.
CREATE TABLE events (
    id         text PRIMARY KEY,        -- webhook-id, the same on every retry
    type       text NOT NULL,
    call_sid   text NOT NULL REFERENCES calls (call_sid) ON DELETE CASCADE,
    dedupe_key text NOT NULL UNIQUE,
    body       text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX events_call_idx ON events (call_sid);

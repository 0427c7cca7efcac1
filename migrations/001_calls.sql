-- Masked numbers and their routing (DESIGN.md's PUT /api/numbers body, defaults applied).
CREATE TABLE numbers (
    number     text PRIMARY KEY,
    routing    jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

-- An inbound call, keyed by the caller's CallSid. No foreign key to numbers: a call's history
-- outlives its number. routing is the number's routing when the call arrived.
CREATE TABLE calls (
    call_sid       text PRIMARY KEY,
    number         text NOT NULL,
    from_number    text NOT NULL,
    mode           text NOT NULL,
    status         text NOT NULL,
    routing        jsonb NOT NULL,
    attempt        int NOT NULL DEFAULT 0,
    conference_sid text,
    hold_caller    boolean NOT NULL DEFAULT false,
    hold_callee    boolean NOT NULL DEFAULT false,
    started_at     timestamptz NOT NULL,
    ended_at       timestamptz,
    updated_at     timestamptz NOT NULL
);
CREATE INDEX calls_started_at_idx ON calls (started_at DESC, call_sid DESC);
CREATE INDEX calls_status_started_at_idx ON calls (status, started_at DESC, call_sid DESC);

-- A forwarded (child) call to one target. sequence is the highest Twilio SequenceNumber applied.
CREATE TABLE legs (
    call_sid          text PRIMARY KEY,
    parent_call_sid   text NOT NULL REFERENCES calls (call_sid) ON DELETE CASCADE,
    target            text NOT NULL DEFAULT '',
    target_index      int,
    status            text NOT NULL,
    sequence          int NOT NULL DEFAULT -1,
    sip_response_code int,
    sip_call_id       text,
    sip_headers       jsonb,
    duration_seconds  int,
    answered_at       timestamptz,
    ended_at          timestamptz,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);
CREATE INDEX legs_parent_call_sid_idx ON legs (parent_call_sid);

-- A call's timeline. dedupe_key makes a repeated callback add nothing (NULL: never deduplicated).
CREATE TABLE call_events (
    id         bigserial PRIMARY KEY,
    call_sid   text NOT NULL REFERENCES calls (call_sid) ON DELETE CASCADE,
    at         timestamptz NOT NULL,
    type       text NOT NULL,
    party      text NOT NULL DEFAULT '',
    by         text NOT NULL DEFAULT '',
    outcome    text NOT NULL DEFAULT '',
    detail     jsonb,
    dedupe_key text,
    UNIQUE (call_sid, dedupe_key)
);

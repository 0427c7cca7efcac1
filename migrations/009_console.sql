-- The console and the owner inbox (issue 20).

-- A voicemail is new until someone marks it handled: who (an ops session's "ops", or the
-- owner's email) and when. Deleted is expired_at (008): its audio and transcript are gone.
ALTER TABLE voicemails
    ADD COLUMN handled_at timestamptz,
    ADD COLUMN handled_by text;

-- Ops console sessions. id_hash is the SHA-256 of the cookie's value: a copy of this table
-- does not log anyone in. csrf is the token every state-changing form of the session carries.
CREATE TABLE console_sessions (
    id_hash    bytea PRIMARY KEY,
    csrf       text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX console_sessions_expires_idx ON console_sessions (expires_at);

-- Call history filtered by number, newest first.
CREATE INDEX calls_number_started_at_idx ON calls (number, started_at DESC, call_sid DESC);

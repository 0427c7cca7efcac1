-- A voicemail email people read (docs/design.md "Voicemail").

-- caller_name: Twilio's CallerName (only with caller-name lookup on the number), cleaned and
-- bounded by the voice webhook; NULL when Twilio sent none.
ALTER TABLE calls ADD COLUMN caller_name text;

ALTER TABLE voicemails
    ADD COLUMN caller_name text,
    -- The routing's time_zone when the voicemail was recorded ('' : the instance's).
    ADD COLUMN time_zone text NOT NULL DEFAULT '',
    -- Whether the email being (or last) sent carries the transcript: set by each claim, from
    -- the row it claims, so that a transcript that arrives after it is sent once as a follow-up.
    ADD COLUMN notify_with_transcript boolean NOT NULL DEFAULT false,
    -- The transcript follow-up: NULL none asked; pending, sending, sent, failed, or skipped (the
    -- email itself carried the transcript, or never went).
    ADD COLUMN followup_status text CHECK (followup_status IN ('pending', 'sending', 'sent', 'failed', 'skipped')),
    ADD COLUMN followup_attempts int NOT NULL DEFAULT 0,
    ADD COLUMN followup_claimed_at timestamptz,
    ADD COLUMN followup_last_error text,
    ADD COLUMN followup_sent_at timestamptz;

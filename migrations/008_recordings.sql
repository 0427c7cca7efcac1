-- callrelay's own copy of each recording (issue 19), deletion at Twilio and retention.
-- audio_* describe the verified copy in CALLRELAY_RECORDINGS_URL (NULL: none, or purged);
-- twilio_deleted_at is when Twilio's copy was deleted (or found gone); expired_at is when the
-- audio and transcript were removed (retention or DELETE /api/voicemails/{id}): the row still
-- says who called and when.
ALTER TABLE voicemails
    ADD COLUMN audio_key          text,
    ADD COLUMN audio_content_type text,
    ADD COLUMN audio_size         bigint,
    ADD COLUMN audio_sha256       text,
    ADD COLUMN copied_at          timestamptz,
    ADD COLUMN twilio_deleted_at  timestamptz,
    ADD COLUMN expired_at         timestamptz,
    ADD COLUMN purged_at          timestamptz;

-- The retention sweep looks for live voicemails by age.
CREATE INDEX voicemails_live_created_idx ON voicemails (created_at) WHERE expired_at IS NULL;
-- The timeline sweep deletes old entries by age.
CREATE INDEX call_events_at_idx ON call_events (at);

-- Conference mode and hold (DESIGN.md "Conference mode", "Hold semantics").

-- call_token: the inbound call's CallToken, which lets a participant show the caller's number.
-- callee_call_sid: the leg that answered first, the callee of hold and unhold.
-- next_target, dialed: conference ringing; targets claimed for dialing, and those whose
-- CreateParticipant has finished (created or refused). Both count up to the number of targets.
ALTER TABLE calls
    ADD COLUMN call_token text NOT NULL DEFAULT '',
    ADD COLUMN callee_call_sid text,
    ADD COLUMN next_target int NOT NULL DEFAULT 0,
    ADD COLUMN dialed int NOT NULL DEFAULT 0;

-- A leg dialed as a conference participant has a label (callee-1…callee-N).
ALTER TABLE legs ADD COLUMN label text;

-- Conference participants, caller and callees, as Twilio's conference events tell them.
-- sequence is the highest conference SequenceNumber applied to the participant; joined_at and
-- left_at are merged whatever the order the events arrive in.
CREATE TABLE participants (
    call_sid        text PRIMARY KEY,
    parent_call_sid text NOT NULL REFERENCES calls (call_sid) ON DELETE CASCADE,
    conference_sid  text NOT NULL,
    party           text NOT NULL CHECK (party IN ('caller', 'callee')),
    label           text NOT NULL DEFAULT '',
    held            boolean NOT NULL DEFAULT false,
    sequence        int NOT NULL DEFAULT -1,
    joined_at       timestamptz,
    left_at         timestamptz,
    left_reason     text,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX participants_parent_call_sid_idx ON participants (parent_call_sid);

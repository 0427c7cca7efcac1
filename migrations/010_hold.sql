-- Hold without waiting behind Twilio (DESIGN.md "Hold and resume"): a request records its intent,
-- asks Twilio with no transaction open, then records the outcome.

-- hold_intents: a call's one hold request that is waiting for Twilio. A second request for the
-- call waits for its outcome (NOTIFY hold_outcome). A webhook that the request causes (a
-- direct-mode Dial or Enqueue action) answers from after_caller/after_callee, the hold state once
-- Twilio has done it, and names itself in acted. after_owner: the bridge's owner then (direct mode,
-- nobody held). expires_at frees the call when the replica that wrote the intent died: an expired
-- intent is ignored, and replaced by the next request (with a new id).
CREATE TABLE hold_intents (
    call_sid     text PRIMARY KEY REFERENCES calls (call_sid) ON DELETE CASCADE,
    id           bigserial NOT NULL,
    party        text NOT NULL CHECK (party IN ('caller', 'callee')),
    hold         boolean NOT NULL,
    by           text NOT NULL,
    request_id   text NOT NULL,
    after_caller boolean NOT NULL,
    after_callee boolean NOT NULL,
    after_owner  text CHECK (after_owner IN ('caller', 'callee')),
    acted        text,
    started_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL
);

-- held_since: when a direct-mode call first went through a hold (a hold Twilio did, or a webhook
-- that answered from a pending one). From then on its original <Dial> no longer bridges it, and
-- callrelay ends the call itself when a party hangs up. Never cleared. Calls recorded before
-- are backfilled from what stood for it until now.
ALTER TABLE calls ADD COLUMN held_since timestamptz;
UPDATE calls SET held_since = updated_at
WHERE mode = 'direct' AND (hold_caller OR hold_callee OR bridge_owner IS NOT NULL OR EXISTS (
    SELECT 1 FROM call_events e WHERE e.call_sid = calls.call_sid AND e.type = 'hold' AND e.outcome = 'ok'));

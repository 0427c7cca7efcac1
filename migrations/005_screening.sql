-- Screened forwarding (DESIGN.md "Screening"): what each dialed leg did with its screen.

-- screen: the screen the leg was offered (press, announce, or off: machine detection only;
-- NULL: none fetched).
-- screen_outcome: offered, then accepted, declined, unanswered, machine, or ended (the leg ended
-- while its screen waited for a key); a final outcome is never replaced. accepted_at: when the leg accepted, recorded before Twilio bridges it, so the
-- Dial action can tell a person who took the call from a carrier's voicemail.
-- answered_by: Twilio's AnsweredBy when answering-machine detection ran.
ALTER TABLE legs
    ADD COLUMN screen text CHECK (screen IN ('press', 'announce', 'off')),
    ADD COLUMN screen_outcome text CHECK (screen_outcome IN ('offered', 'accepted', 'declined', 'unanswered', 'machine', 'ended')),
    ADD COLUMN accepted_at timestamptz,
    ADD COLUMN answered_by text;

-- Numbers stored before screening get the new defaults explicitly, as a PUT would give them:
-- press for phone targets, off for the others. Calls already recorded keep their routing
-- (their legs were dialed without a screen: no screen reads as off).
UPDATE numbers SET routing = jsonb_set(routing, '{targets}', (
    SELECT coalesce(jsonb_agg(
        CASE WHEN t ? 'screen' THEN t
             ELSE t || jsonb_build_object('screen', CASE WHEN t->>'type' = 'phone' THEN 'press' ELSE 'off' END)
        END ORDER BY i), '[]'::jsonb)
    FROM jsonb_array_elements(routing->'targets') WITH ORDINALITY AS a(t, i)))
WHERE jsonb_typeof(routing->'targets') = 'array';

-- A call's row is written by its callbacks: a leg's answer (status in-progress), its Dial
-- action (the next status: ringing, voicemail), the caller's final status. An update that
-- changes an indexed column is never a HOT update: a new row version on another page and a new
-- entry in every index. calls_status_started_at_idx made every status change one. It goes; the
-- status filters read two indexes on final_status instead, which changes only when the call ends.

-- Leave 30% of each page for the updates that are now HOT. Set first: adding final_status
-- below rewrites the table, and its existing pages get that room too.
ALTER TABLE calls SET (fillfactor = 70);

-- final_status: the status once it is terminal (a call never leaves one), NULL while the call
-- is live. It changes once, when the call ends, and ended_at changes with it then, so it makes
-- no update non-HOT that was not already. The list is callrelay.TerminalStatuses
-- (TestFinalStatus holds the two together).
ALTER TABLE calls ADD COLUMN final_status text
    GENERATED ALWAYS AS (CASE WHEN status IN ('completed', 'busy', 'failed', 'no-answer', 'canceled') THEN status END) STORED;

-- A filter on a terminal status (?status=failed). Ended calls only: a new call adds no entry
-- (its final_status is NULL), and its end, which writes a new row version anyway, adds one.
CREATE INDEX calls_final_status_started_at_idx ON calls (final_status, started_at DESC, call_sid DESC)
    WHERE final_status IS NOT NULL;

-- Live calls, newest first: the console's live view, and a filter on a live status (ringing,
-- in-progress, queued, voicemail), whatever the table's size.
CREATE INDEX calls_live_started_at_idx ON calls (started_at DESC, call_sid DESC) WHERE final_status IS NULL;

DROP INDEX calls_status_started_at_idx;

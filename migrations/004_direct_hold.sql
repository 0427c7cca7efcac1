-- Direct-mode hold (DESIGN.md "Direct-mode hold"): the held party waits in a per-call queue.

-- bridge_owner: the party whose leg runs the <Dial> that bridges the two after a resume (before
-- any hold, the caller's original <Dial>: NULL). caller_queue_sid, callee_queue_sid: the
-- per-party queues, learned from the <Enqueue> action, deleted when the call ends.
ALTER TABLE calls
    ADD COLUMN bridge_owner text CHECK (bridge_owner IN ('caller', 'callee')),
    ADD COLUMN caller_queue_sid text,
    ADD COLUMN callee_queue_sid text;

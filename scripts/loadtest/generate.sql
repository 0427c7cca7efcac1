-- generate.sql — fill a migrated callrelay database with :calls finished calls, written by
-- generate_series rather than by the webhooks, to measure how each route's cost grows with the
-- tables (issue 21, docs/performance.md "Growth"). scripts/loadtest/growth.sh runs it:
--
--   psql -v calls=1000000 -v numbers=1000 -v months=11 -f generate.sql DATABASE_URL
--
-- or in chunks, each its own transaction (growth.sh loads 10^7 so, 10^6 at a time: one
-- statement over 10^7 calls sorts tens of GB in temporary files): -v first=F -v last=L writes
-- calls F..L of :calls, and -v vacuum=0 skips the final VACUUM ANALYZE (for all but the last).
--
-- Each call is one of a number's calls (:numbers numbers, +1555200xxxx) forwarded to one phone,
-- started at a time spread evenly over the :months months before the run (default 11: inside
-- the timeline's 365-day retention, which deletes older rows once callrelay runs), and ended
-- as the load test's calls end (scripts/loadtest/webhook.OutcomeOf's mix):
--   40% answered:  legs: completed; timeline: inbound, 4 leg statuses, dial-outcome, call-status;
--                  call_outcomes: answered
--   45% no-answer: legs: no-answer; timeline: inbound, 3 leg statuses, dial-outcome (next
--                  voicemail), voicemail, call-status; 60% of them also a recording and a
--                  voicemail; call_outcomes: voicemail or missed
--   15% busy:      as no-answer with 2 leg statuses
-- so about 7.2 timeline rows, 1 leg, 0.36 voicemails and 1 outcome per call. CallSids are
-- md5-random like Twilio's. The rows go in in CallSid order, with foreign-key triggers off
-- (session_replication_role = replica: the rows are consistent by construction), which keeps a
-- 10^7-call load within minutes. Run it on an empty, migrated database (callrelay migrate).
\set ON_ERROR_STOP on
\if :{?numbers}
\else
\set numbers 1000
\endif
\if :{?months}
\else
\set months 11
\endif
\if :{?first}
\else
\set first 1
\endif
\if :{?last}
\else
\set last :calls
\endif
\if :{?vacuum}
\else
\set vacuum 1
\endif
\timing on
SET session_replication_role = replica;
SET synchronous_commit = off;
SET maintenance_work_mem = '512MB';
SET work_mem = '256MB';

BEGIN;
INSERT INTO numbers (number, routing, created_at, updated_at)
SELECT '+1555200' || lpad(n::text, 4, '0'),
	jsonb_build_object('owner_email', 'owner' || n || '@example.com', 'mode', 'direct', 'enabled', true,
		'timeout_seconds', 20,
		'targets', jsonb_build_array(jsonb_build_object('type', 'phone', 'to', '+1555300' || lpad(n::text, 4, '0'),
			'screen', 'off')),
		'voicemail', jsonb_build_object('enabled', true, 'max_length_seconds', 120, 'transcribe', false)),
	now() - make_interval(months => :months), now() - make_interval(months => :months)
FROM generate_series(1, :numbers) n
ON CONFLICT (number) DO NOTHING;

-- g: one row per call, its random draws and times. CallSid order, for compact indexes.
CREATE TEMP TABLE g ON COMMIT DROP AS
SELECT i,
	'CA' || md5('call:' || i) AS sid,
	'CA' || md5('leg:' || i) AS leg,
	'+1555200' || lpad((1 + (i % :numbers))::text, 4, '0') AS number,
	'+1555' || lpad(((i::bigint * 7919) % 10000000)::text, 7, '0') AS from_number,
	'+1555300' || lpad((1 + (i % :numbers))::text, 4, '0') AS target,
	CASE WHEN h % 20 < 8 THEN 'completed' WHEN h % 20 < 17 THEN 'no-answer' ELSE 'busy' END AS outcome,
	(h / 20) % 10 < 6 AS left_message,
	date_trunc('second', now() - make_interval(months => :months)
		+ (i::float8 / :calls) * (now() - (now() - make_interval(months => :months)))) AS t
FROM (SELECT i, ('x' || substr(md5('draw:' || i), 1, 8))::bit(32)::bigint AS h FROM generate_series(:first, :last) i) d
ORDER BY sid;

INSERT INTO calls (call_sid, number, from_number, mode, status, routing, attempt, started_at, ended_at, updated_at,
	call_token, callee_call_sid, dialed)
SELECT g.sid, g.number, g.from_number, 'direct', 'completed', nb.routing - '{schedule,after_hours,callers}'::text[], 0,
	g.t, g.t + interval '40 seconds', g.t + interval '40 seconds',
	'{"parentCallInfoToken":"eyJhbGciOiJFUzI1NiJ9.' || g.sid || '"}',
	CASE WHEN g.outcome = 'completed' THEN g.leg END, 1
FROM g JOIN numbers nb ON nb.number = g.number
ORDER BY g.sid;

INSERT INTO legs (call_sid, parent_call_sid, target, target_index, status, sequence, duration_seconds,
	answered_at, ended_at, created_at, updated_at)
SELECT leg, sid, target, 0, outcome, CASE outcome WHEN 'completed' THEN 3 WHEN 'no-answer' THEN 2 ELSE 1 END,
	CASE WHEN outcome = 'completed' THEN 30 ELSE 0 END,
	CASE WHEN outcome = 'completed' THEN t + interval '4 seconds' END, t + interval '34 seconds', t, t + interval '34 seconds'
FROM g ORDER BY leg;

-- The timeline, in CallSid order (the unique index's order).
INSERT INTO call_events (call_sid, at, type, party, by, outcome, detail, dedupe_key)
SELECT e.call_sid, e.at, e.type, e.party, e.by, e.outcome, e.detail, e.dedupe_key FROM (
	SELECT sid, t, 'inbound', '', 'twilio', 'ringing', jsonb_build_object('from', from_number, 'to', number), 'inbound', 0 AS k FROM g
	UNION ALL
	SELECT g.sid, g.t + s.after, 'leg', 'callee', 'twilio', s.status, jsonb_build_object('leg', g.leg, 'target', g.target),
		'leg:' || g.leg || ':' || s.status, s.k
	FROM g JOIN (VALUES
		('completed', 'initiated', interval '100 ms', 1), ('completed', 'ringing', interval '300 ms', 2),
		('completed', 'in-progress', interval '4 s', 3), ('completed', 'completed', interval '34 s', 4),
		('no-answer', 'initiated', interval '100 ms', 1), ('no-answer', 'ringing', interval '300 ms', 2),
		('no-answer', 'no-answer', interval '20 s', 4),
		('busy', 'initiated', interval '100 ms', 1), ('busy', 'busy', interval '600 ms', 4)
	) s(outcome, status, after, k) ON s.outcome = g.outcome
	UNION ALL
	SELECT sid, t + interval '34 s', 'dial-outcome', '', 'twilio', outcome,
		jsonb_build_object('dial_call_status', outcome, 'attempt', 0, 'dial_call_sid', leg, 'caller_status', 'in-progress',
			'next', CASE WHEN outcome = 'completed' THEN 'hangup' ELSE 'voicemail' END),
		'dial-outcome:0', 5 FROM g
	UNION ALL
	SELECT sid, t + interval '35 s', 'voicemail', 'caller', 'twilio', '', NULL, 'voicemail', 6 FROM g WHERE outcome <> 'completed'
	UNION ALL
	SELECT sid, t + interval '39 s', 'recording', 'caller', 'twilio', 'completed',
		jsonb_build_object('recording_sid', 'RE' || substr(leg, 3)), 'recording:RE' || substr(leg, 3), 7
	FROM g WHERE outcome <> 'completed' AND left_message
	UNION ALL
	SELECT sid, t + interval '40 s', 'call-status', 'caller', 'twilio', 'completed', NULL, 'call-status:completed', 8 FROM g
) e(call_sid, at, type, party, by, outcome, detail, dedupe_key, k)
ORDER BY e.call_sid, e.k;

INSERT INTO voicemails (call_sid, recording_sid, recording_url, number, from_number, owner_email, duration_seconds,
	recorded_at, transcript_status, notify_status, notified_at, created_at, updated_at)
SELECT sid, 'RE' || substr(leg, 3), 'https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/RE' || substr(leg, 3),
	number, from_number, 'owner@example.com', 5 + (i % 60), t + interval '39 s', 'off', 'sent', t + interval '45 s',
	t + interval '39 s', t + interval '45 s'
FROM g WHERE outcome <> 'completed' AND left_message ORDER BY t;

INSERT INTO call_outcomes (call_sid, outcome, stage, waited_seconds, owner_email, notify_status, decided_at, updated_at)
SELECT sid, CASE WHEN outcome = 'completed' THEN 'answered' WHEN left_message THEN 'voicemail' ELSE 'missed' END,
	CASE WHEN outcome <> 'completed' AND NOT left_message THEN 'greeting' END,
	CASE WHEN outcome <> 'completed' THEN 20 END, 'owner@example.com',
	CASE WHEN outcome <> 'completed' AND NOT left_message THEN 'sent' ELSE 'off' END, t + interval '40 s', t + interval '40 s'
FROM g ORDER BY sid;
COMMIT;

\if :vacuum
VACUUM (ANALYZE) numbers, calls, legs, call_events, voicemails, call_outcomes;
SELECT relname, n_live_tup, pg_size_pretty(pg_total_relation_size(relid)) AS total_size
FROM pg_stat_user_tables WHERE relname IN ('calls', 'legs', 'call_events', 'voicemails', 'call_outcomes')
ORDER BY relname;
\endif

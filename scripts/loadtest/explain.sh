#!/usr/bin/env bash
# explain.sh — the plans of the hot webhooks' statements, as PostgreSQL ran them, on a database
# of the private cluster (scripts/loadtest/pgperf.sh) filled by generate.sql: EXPLAIN (ANALYZE,
# BUFFERS) of every statement callrelay sends for /twilio/voice, /twilio/call-status (a leg's
# initiated, ringing, in-progress, completed) and /twilio/dial-outcome, logged by auto_explain
# for this database only while the script runs.
#
# Usage: scripts/loadtest/explain.sh DB [CALLS]
#   DB     a database of the private cluster (growth.sh makes gen_<calls>)
#   CALLS  new calls to send (default 8: the first five executions of a prepared statement are
#          planned for their parameters, the later ones may use a generic plan; both show)
# Output: $PERF_DIR/explain-DB.txt (each plan once per distinct statement, the last execution).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PERF_DIR=${PERF_DIR:-/tmp/callrelay-perf}
PGPERF=$ROOT/scripts/loadtest/pgperf.sh
GO=${GO:-go}
export PATH=$PATH:/usr/local/go/bin
DB=${1:?usage: explain.sh DB [CALLS]}
N=${2:-8}
TOKEN=explaintoken123
ADDR=127.0.0.1:18090
NUMBER=+15551230000
CALLER=+15559870000
FORWARD=+15550001111
KEEP=1 # never drop DB
LOG_NAME=explain
# shellcheck source=lib.sh
. "$ROOT/scripts/loadtest/lib.sh"
export PGHOST=127.0.0.1 PGPORT=${PERF_PORT:-55432} PGUSER=postgres
trap 'stop_everything; psql_admin "ALTER DATABASE \"$DB\" RESET ALL" >/dev/null 2>&1 || true' EXIT

"$PGPERF" start >/dev/null
mkdir -p "$PERF_DIR/explain"
(cd "$ROOT" && "$GO" build -o "$PERF_DIR/explain/callrelay" ./cmd/callrelay && "$GO" build -o "$PERF_DIR/explain/gen" ./scripts/loadtest/gen) ||
	die "go build failed"
for s in "log_min_duration = 0" "log_analyze = on" "log_buffers = on" "log_timing = on" "log_nested_statements = on" "log_verbose = off"; do
	psql_admin "ALTER DATABASE \"$DB\" SET auto_explain.${s%% *} = '${s##* }'" >/dev/null
done
log_before=$(stat -c %s "$PERF_DIR/postgres.log")
OPS=$(hex 24)
start_callrelay "$PERF_DIR/explain/callrelay" "$(db_url "$DB")" "$ADDR" "$OPS" "$TOKEN" "$PERF_DIR/explain/callrelay.log" "$PERF_DIR/explain/mail"
put_number "$ADDR" "$OPS" "$NUMBER" "$FORWARD" "$PERF_DIR/explain/number.json"

# post ROUTE FILE: each line of FILE ("signature<TAB>body") to ROUTE's URL, one at a time.
post() {
	local url sig body code
	url=$("$PERF_DIR/explain/gen" -route "$1" -url "http://$ADDR" -print-url)
	while IFS=$'\t' read -r sig body; do
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H 'Content-Type: application/x-www-form-urlencoded' \
			-H "X-Twilio-Signature: $sig" --data-binary "$body" "$url")
		[[ $code == 2?? ]] || die "$1 answered $code"
	done <"$2"
}
G=("$PERF_DIR/explain/gen" -url "http://$ADDR" -token "$TOKEN" -number "$NUMBER" -from "$CALLER" -target "$FORWARD")
PREFIX=$(hex 4)
"${G[@]}" -route /twilio/voice -n "$N" -prefix "$PREFIX" >"$PERF_DIR/explain/voice.tsv"
post /twilio/voice "$PERF_DIR/explain/voice.tsv"
# The calls just made (gen's CallSids: CA, the prefix, the index in hex).
for ((i = 0; i < N; i++)); do printf 'CA%s%024x\n' "$PREFIX" "$i"; done >"$PERF_DIR/explain/calls.txt"
"${G[@]}" -route /twilio/call-status -calls "$PERF_DIR/explain/calls.txt" >"$PERF_DIR/explain/status.tsv"
post /twilio/call-status "$PERF_DIR/explain/status.tsv"
"${G[@]}" -route /twilio/dial-outcome -calls "$PERF_DIR/explain/calls.txt" >"$PERF_DIR/explain/dial.tsv"
post /twilio/dial-outcome "$PERF_DIR/explain/dial.tsv"
stop_pid "$CR_PID"

# The plans this database logged, the last of each distinct statement and top plan node, of the webhooks' tables only (River's and the start-up's left out).
OUT=$PERF_DIR/explain-$DB.txt
tail -c +"$((log_before + 1))" "$PERF_DIR/postgres.log" | awk -v db="$DB" '
	/LOG:  duration: .* plan:/ { if (cur != "") flush(); cur = $0 "\n"; grab = 1; next }
	grab && /^(\t|  |Query Text| )/ { cur = cur $0 "\n"; next }
	grab { flush(); grab = 0 }
	function flush() {
		q = substr(cur, index(cur, "\n") + 1); gsub(/[ \t\n]+/, " ", q)
		c = index(q, "(cost="); if (c > 0) q = substr(q, 1, c - 1) # the text and the top node: a plan that changes shows twice
		key = substr(q, 1, 200) "|" substr(q, length(q) - 60)
		if (key ~ /(FROM|INTO|UPDATE) (calls|legs|call_events)|WITH (nb|req|parent|ev|l) AS|pg_advisory_xact_lock_shared/ && key !~ /river_/) { plans[key] = cur; if (!(key in seen)) { order[++n] = key; seen[key] = 1 } }
		cur = ""
	}
	END { if (cur != "") flush(); for (i = 1; i <= n; i++) print plans[order[i]] "\n" }' >"$OUT"
log "$(grep -c 'plan:' "$OUT") distinct statements; plans in $OUT"

#!/usr/bin/env bash
# growth.sh — how each webhook's cost grows with the tables (issue 21, docs/performance.md
# "Growth"). For each size N of GROWTH_SIZES, on the private cluster (pgperf.sh):
#   1. database gen_N, migrated and filled by generate.sql with N finished calls (legs,
#      timelines, voicemails, outcomes in the load test's proportions), unless it exists;
#   2. explain.sh gen_N: EXPLAIN (ANALYZE, BUFFERS) of every statement of the three webhooks;
#   3. scripts/loadtest.sh on gen_N (LOADTEST_DB): voice, call-status and dial-outcome at 32
#      connections, as make loadtest runs them, on the number +15551230000 (the generated calls
#      belong to other numbers; the callbacks hit the calls the voice run made, as Twilio's hit
#      live calls).
# Prints one line per size and route (GROWTH size=… route=… rps=… p99_ms=… cpu_us=…) and keeps
# each run's output in $PERF_DIR/growth/.
#
# Environment (defaults): GROWTH_SIZES="10000 1000000 10000000"  DURATION=10s  WARMUP=3s
#   PERF_DIR=/tmp/callrelay-perf  PERF_PORT=55432  GROWTH_MIXED=0 (1: also the mixed run)
#   GROWTH_FILL_ONLY=0 (1: fill the databases, measure nothing: fill while others work, then
#   measure alone)
# A 10^6-call database takes 3.6 GB and about 3.5 minutes to fill on the 2-core development
# machine; 10^7 ten times that (about 36 GB, filled 10^6 calls at a time; the fill stops when
# less than GROWTH_MIN_FREE_GB=20 GB would be left on the disk). On a shared machine, run it under
# the same `flock <lock file>` as the other load tests (it takes no lock itself).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PERF_DIR=${PERF_DIR:-/tmp/callrelay-perf}
PGPERF=$ROOT/scripts/loadtest/pgperf.sh
GO=${GO:-go}
export PATH=$PATH:/usr/local/go/bin
LOG_NAME=growth
# shellcheck source=lib.sh
. "$ROOT/scripts/loadtest/lib.sh"
export PGHOST=127.0.0.1 PGPORT=${PERF_PORT:-55432} PGUSER=postgres

"$PGPERF" start >/dev/null
mkdir -p "$PERF_DIR/growth"
(cd "$ROOT" && "$GO" build -o "$PERF_DIR/growth/callrelay" ./cmd/callrelay) || die "go build failed"
for n in ${GROWTH_SIZES:-10000 1000000 10000000}; do
	db=gen_$n
	if [[ $(psql_admin "SELECT count(*) FROM pg_database WHERE datname = '$db'") == 0 ]]; then
		psql_admin "CREATE DATABASE \"$db\"" >/dev/null
		DATABASE_URL=$(db_url "$db") TWILIO_AUTH_TOKEN=growth CALLRELAY_OPS_TOKEN=$(hex 24) \
			"$PERF_DIR/growth/callrelay" migrate >/dev/null 2>&1 || die "migrate $db failed"
		t0=$(now_ms)
		chunk=1000000
		for ((first = 1; first <= n; first += chunk)); do
			last=$((first + chunk - 1 < n ? first + chunk - 1 : n))
			free=$(df -k --output=avail "$PERF_DIR" | tail -n 1)
			((free > ${GROWTH_MIN_FREE_GB:-20} * 1024 * 1024)) ||
				die "$db: less than ${GROWTH_MIN_FREE_GB:-20} GB free on $PERF_DIR's disk after $((first - 1)) calls: stopped (the machine is shared)"
			psql -X -q -v calls="$n" -v first="$first" -v last="$last" -v vacuum="$((last == n))" \
				-f "$ROOT/scripts/loadtest/generate.sql" -d "$db" >>"$PERF_DIR/growth/$db.generate.txt" ||
				die "generate.sql failed (see $PERF_DIR/growth/$db.generate.txt)"
			log "$db: calls $first..$last of $n written ($((($(now_ms) - t0) / 1000)) s)"
		done
		log "$db: $n calls generated in $((($(now_ms) - t0) / 1000)) s"
	fi
	[[ ${GROWTH_FILL_ONLY:-0} == 1 ]] && continue
	psql_db "$db" "SELECT relname || '=' || pg_size_pretty(pg_total_relation_size(relid)) FROM pg_stat_user_tables
		WHERE relname IN ('calls', 'legs', 'call_events') ORDER BY relname" | tr '\n' ' ' | sed "s/^/$db sizes: /" >&2
	echo >&2
	"$ROOT/scripts/loadtest/explain.sh" "$db" 8 >/dev/null 2>&1 || log "warning: explain.sh $db failed"
	cp "$PERF_DIR/explain-$db.txt" "$PERF_DIR/growth/" 2>/dev/null || true
	LOADTEST_DIR=$PERF_DIR/growth/lt LOADTEST_DB=$db LOADTEST_MIXED=${GROWTH_MIXED:-0} GO=$GO \
		"$ROOT/scripts/loadtest.sh" >"$PERF_DIR/growth/$db.loadtest.txt" 2>&1 ||
		log "warning: loadtest on $db failed (see $PERF_DIR/growth/$db.loadtest.txt)"
	grep '^LOADTEST ' "$PERF_DIR/growth/$db.loadtest.txt" | sed "s/^LOADTEST server=callrelay /GROWTH size=$n /"
done

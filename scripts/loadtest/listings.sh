#!/usr/bin/env bash
# listings.sh — how long ops' call listings take on a large table (issue 21, migration 012):
# GET /api/calls, unfiltered and by status, on a database of the private cluster
# (scripts/loadtest/pgperf.sh) filled by generate.sql, whose calls have all ended. Before the
# listings it sets 20 of them ringing and 20 failed (the same ones each time, chosen by
# CallSid): the statuses an ops person looks for, and few calls have.
#
# Usage: scripts/loadtest/listings.sh DB BIN
#   DB   a database of the private cluster (growth.sh makes gen_<calls>)
#   BIN  a callrelay binary: it migrates DB (so a newer one applies its migrations, timed),
#        then serves the listings
# Prints, for each listing, the calls it returned and the median of 5 requests' times.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PERF_DIR=${PERF_DIR:-/tmp/callrelay-perf}
DB=${1:?usage: listings.sh DB BIN}
BIN=${2:?usage: listings.sh DB BIN}
ADDR=127.0.0.1:18091
KEEP=1 # never drop DB
LOG_NAME=listings
# shellcheck source=lib.sh
. "$ROOT/scripts/loadtest/lib.sh"
export PGHOST=127.0.0.1 PGPORT=${PERF_PORT:-55432} PGUSER=postgres
trap stop_everything EXIT

"$ROOT/scripts/loadtest/pgperf.sh" start >/dev/null
mkdir -p "$PERF_DIR/listings"
t0=$(now_ms)
DATABASE_URL=$(db_url "$DB") TWILIO_AUTH_TOKEN=unused "$BIN" migrate >"$PERF_DIR/listings/migrate.log" 2>&1 || die "migrate failed (see $PERF_DIR/listings/migrate.log)"
log "migrate: $(($(now_ms) - t0)) ms"
psql_db "$DB" "
	UPDATE calls SET status = 'ringing', ended_at = NULL
	WHERE call_sid IN (SELECT call_sid FROM calls ORDER BY call_sid LIMIT 20) AND status <> 'ringing';
	UPDATE calls SET status = 'failed'
	WHERE call_sid IN (SELECT call_sid FROM calls ORDER BY call_sid DESC LIMIT 20) AND status <> 'failed';
	ANALYZE calls"
OPS=$(hex 24)
start_callrelay "$BIN" "$(db_url "$DB")" "$ADDR" "$OPS" "token$(hex 8)" "$PERF_DIR/listings/callrelay.log" "$PERF_DIR/listings/mail"
for q in "" "?status=ringing" "?status=in-progress" "?status=failed" "?status=busy" "?status=completed" "?status=completed&limit=500"; do
	times=()
	for _ in 1 2 3 4 5; do
		times+=("$(curl -s -o "$PERF_DIR/listings/body.json" -w '%{time_total}' -H "Authorization: Bearer $OPS" "http://$ADDR/api/calls$q")")
	done
	n=$(jq '.calls | length' "$PERF_DIR/listings/body.json")
	median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 3p)
	printf 'GET /api/calls%-24s %4d calls  %8.1f ms\n' "$q" "$n" "$(awk -v s="$median" 'BEGIN { print s * 1000 }')"
done

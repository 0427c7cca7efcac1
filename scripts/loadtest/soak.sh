#!/usr/bin/env bash
# soak.sh — run callrelay under steady, mixed, whole-call traffic for a while and check that
# nothing fails and that its memory and goroutines do not grow.
#
# Usage: scripts/loadtest/soak.sh      (or: make soak [SOAK_DURATION=5m] [SOAK_RATE=300])
#
#   1. The rate: SOAK_RATE (or RATE) requests/s if given; else half of callrelay's peak for the
#      same mix, measured first: a callrelay on a fresh database, CONNECTIONS closed-loop workers
#      of scripts/loadtest/soak -peak sending whole calls back to back (over at most 16
#      connections) for PEAK_DURATION, after a 2 s warm-up; then that callrelay and database are
#      gone. (Half the voice webhook's peak would be more than callrelay answers of the mix: a
#      Dial action or a leg's status costs more than a new call, which shares its commit.)
#   2. The soak: a new callrelay on a fresh database, one masked number forwarding to one phone,
#      and scripts/loadtest/soak for SOAK_DURATION at that rate: open loop, whole calls (voice,
#      the leg's status callbacks, the Dial action; 40% answered, 45% no-answer, 15% busy),
#      signed on the fly. Every SOAK_SAMPLE it prints callrelay's RSS (VmRSS) and goroutines
#      (go_goroutines of /metrics); at the end latency percentiles and errors per route, the
#      series, first/last/max, and the growth verdict (rule: see scripts/loadtest/soak/main.go;
#      with the defaults, the last minute's mean against the second minute's: more than 20% +
#      8 MB of RSS, or 20% + 20 goroutines, is growth).
#   3. The rows: calls = voice answers, leg events = call-status answers, dial-outcome events =
#      Dial action answers (every request has been answered by then).
# Exits 1 when a request failed, a sample failed, memory or goroutines grew, or rows are
# missing; 2 on a setup error.
#
# Environment (defaults):
#   SOAK_DURATION=5m  SOAK_RATE=(half the peak; RATE works too)  SOAK_SAMPLE=10s
#   SOAK_MAX_GROWTH=20 (%)  SOAK_RSS_SLACK_MB=8  SOAK_GOROUTINE_SLACK=20
#   PEAK_DURATION=10s  CONNECTIONS=32                  the peak run
#   LOADTEST_DIR=<repo>/.data/loadtest (output in soak/)  LOADTEST_TWILIO_TOKEN=loadtesttoken123
#   LOADTEST_KEEP=0 (1: keep the databases)  PGHOST=127.0.0.1 PGPORT=5432 PGUSER=<current user>  GO=go
# Port: callrelay on 127.0.0.1:18080 (must be free). Never run it with another load test.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SCRATCH=${LOADTEST_DIR:-$ROOT/.data/loadtest}
RUN=$SCRATCH/soak
BIN=$SCRATCH/soak-bin

SOAK_DURATION=${SOAK_DURATION:-5m}
SOAK_RATE=${SOAK_RATE:-${RATE:-}}
SOAK_SAMPLE=${SOAK_SAMPLE:-10s}
SOAK_MAX_GROWTH=${SOAK_MAX_GROWTH:-20}
SOAK_RSS_SLACK_MB=${SOAK_RSS_SLACK_MB:-8}
SOAK_GOROUTINE_SLACK=${SOAK_GOROUTINE_SLACK:-20}
PEAK_DURATION=${PEAK_DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
TOKEN=${LOADTEST_TWILIO_TOKEN:-loadtesttoken123}
KEEP=${LOADTEST_KEEP:-0}
GO=${GO:-go}
export PATH=$PATH:/usr/local/go/bin
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-$(id -un)}

CR_ADDR=127.0.0.1:18080
CR_URL=http://$CR_ADDR
NUMBER=+15551230000
CALLER=+15559870000
FORWARD=+15550001111

LOG_NAME=soak
# shellcheck source=lib.sh
. "$ROOT/scripts/loadtest/lib.sh"

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_everything
	rm -f "$RUN"/webhooks*.tsv
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- checks and builds ---------------------------------------------------------------------------

SOAK_S=$(seconds "$SOAK_DURATION") || die "SOAK_DURATION=$SOAK_DURATION: want whole seconds, e.g. 300s or 5m"
SAMPLE_S=$(seconds "$SOAK_SAMPLE") || die "SOAK_SAMPLE=$SOAK_SAMPLE: want whole seconds, e.g. 10s"
PEAK_S=$(seconds "$PEAK_DURATION") || die "PEAK_DURATION=$PEAK_DURATION: want whole seconds, e.g. 10s"
((SOAK_S >= 30 && SOAK_S <= 86400)) || die "SOAK_DURATION=$SOAK_DURATION: between 30s and 24h, please"
((SAMPLE_S >= 1 && SAMPLE_S * 6 <= SOAK_S)) || die "SOAK_SAMPLE=$SOAK_SAMPLE: at least 1s and at most a sixth of SOAK_DURATION"
((PEAK_S >= 1 && PEAK_S <= 120)) || die "PEAK_DURATION=$PEAK_DURATION: between 1s and 2m, please"
if [[ -n $SOAK_RATE ]]; then
	[[ $SOAK_RATE =~ ^[0-9]+([.][0-9]+)?$ ]] && awk -v r="$SOAK_RATE" 'BEGIN { exit !(r > 0) }' ||
		die "SOAK_RATE=$SOAK_RATE: want requests per second, > 0"
fi
((CONNECTIONS >= 1)) || die "CONNECTIONS=$CONNECTIONS: want at least 1"

for c in curl psql "$GO" awk od jq; do
	command -v "$c" >/dev/null 2>&1 || die "$c not found on PATH"
done
psql_admin 'SELECT 1' >/dev/null 2>&1 ||
	die "cannot log in to Postgres at $PGHOST:$PGPORT as $PGUSER (set PGHOST, PGPORT, PGUSER)"
port_free 127.0.0.1 18080 || die "127.0.0.1:18080 is in use: another callrelay (or load test) is running"

mkdir -p "$RUN" "$BIN"
rm -f "$RUN"/*.log "$RUN"/*.out "$RUN"/webhooks*.tsv
REV=$(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown)
log "building callrelay ($REV; the working tree as it is now) and soak"
(cd "$ROOT" && "$GO" build -o "$BIN/callrelay" ./cmd/callrelay) || die "go build ./cmd/callrelay failed"
(cd "$ROOT" && "$GO" build -o "$BIN/soak" ./scripts/loadtest/soak) || die "go build ./scripts/loadtest/soak failed"

LOAD_START=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$LOAD_START" -v n="$(nproc)" 'BEGIN { exit !(l > n) }'; then
	log "warning: load average $LOAD_START on $(nproc) cores: other work is running, the figures will be noisy"
fi
OPS=$(hex 24)

# --- 1. the rate -----------------------------------------------------------------------------------

PEAK=-
if [[ -z $SOAK_RATE ]]; then
	db=callrelay_peak_$(hex 4)
	log "peak: callrelay on database $db; $CONNECTIONS closed-loop workers sending whole calls for $PEAK_DURATION"
	create_db "$db"
	start_callrelay "$BIN/callrelay" "$(db_url "$db")" "$CR_ADDR" "$OPS" "$TOKEN" "$RUN/peak.log" "$RUN/mail"
	put_number "$CR_ADDR" "$OPS" "$NUMBER" "$FORWARD" "$RUN/number.json"
	for phase in warm peak; do
		d=2s
		[[ $phase == peak ]] && d=$PEAK_DURATION
		"$BIN/soak" -url "$CR_URL" -token "$TOKEN" -peak "$CONNECTIONS" -duration "$d" \
			-number "$NUMBER" -from "$CALLER" -target "$FORWARD" >"$RUN/peak-$phase.out" 2>&1 || {
			cat "$RUN/peak-$phase.out" >&2
			die "peak ($phase): callrelay failed requests (log: $RUN/peak.log)"
		}
	done
	result=$(grep '^PEAK ' "$RUN/peak-peak.out" | tail -n 1) || die "no PEAK line: see $RUN/peak-peak.out"
	log "peak: ${result#PEAK }"
	declare -A P
	for kv in ${result#PEAK }; do P[${kv%%=*}]=${kv#*=}; done
	PEAK=${P[rps]}
	SOAK_RATE=$(awk -v p="$PEAK" 'BEGIN { printf "%.0f", p / 2 }')
	((SOAK_RATE >= 1)) || die "peak: $PEAK requests/s: too low to soak at half of it"
	stop_pid "$CR_PID"
	drop_db "$db"
	log "peak: $PEAK requests/s of whole calls; soaking at half: $SOAK_RATE requests/s"
fi

# --- 2. the soak ---------------------------------------------------------------------------------

db=callrelay_soak_$(hex 4)
log "soak: callrelay on database $db, $SOAK_RATE requests/s for $SOAK_DURATION"
create_db "$db"
start_callrelay "$BIN/callrelay" "$(db_url "$db")" "$CR_ADDR" "$OPS" "$TOKEN" "$RUN/callrelay.log" "$RUN/mail"
put_number "$CR_ADDR" "$OPS" "$NUMBER" "$FORWARD" "$RUN/number.json"
echo "callrelay soak — $(date -u +%Y-%m-%dT%H:%M:%SZ), callrelay $REV, $(nproc) cores, load average at start $LOAD_START," \
	"peak $PEAK requests/s (whole calls, closed loop), soak rate $SOAK_RATE requests/s for $SOAK_DURATION"
rc=0
"$BIN/soak" -url "$CR_URL" -token "$TOKEN" -rate "$SOAK_RATE" -duration "${SOAK_S}s" -sample "${SAMPLE_S}s" -pid "$CR_PID" \
	-max-growth "$SOAK_MAX_GROWTH" -rss-slack-mb "$SOAK_RSS_SLACK_MB" -goroutine-slack "$SOAK_GOROUTINE_SLACK" \
	-number "$NUMBER" -from "$CALLER" -target "$FORWARD" | tee "$RUN/soak.out" || rc=$?
((rc <= 1)) || die "the soak program failed (exit $rc): see above"
kill -0 "$CR_PID" 2>/dev/null || die "callrelay exited during the soak (log: $RUN/callrelay.log)"

# --- 3. the rows -----------------------------------------------------------------------------------

ok_of() { awk -v r="$1" '$1 == "SOAK" && $2 == "route=" r { sub("ok=", "", $4); print $4 }' "$RUN/soak.out"; }
FAIL=()
check_rows() {
	local what=$1 sql=$2 want=$3 got
	got=$(psql_db "$db" "SELECT count(*) FROM $sql")
	echo "rows: $what=$got, 2xx answers=$want"
	[[ $got -eq $want ]] || FAIL+=("$what: $got rows for $want 2xx answers")
}
echo
check_rows calls calls "$(ok_of /twilio/voice)"
check_rows "leg events" "call_events WHERE type = 'leg'" "$(ok_of /twilio/call-status)"
check_rows "dial-outcome events" "call_events WHERE type = 'dial-outcome'" "$(ok_of /twilio/dial-outcome)"
echo "calls by status: $(psql_db "$db" "SELECT string_agg(status || '=' || n, ' ' ORDER BY status) FROM (SELECT status, count(*) n FROM calls GROUP BY status) s")"
nerr=$(grep -c '"level":"ERROR"' "$RUN/callrelay.log" || true)
if [[ $nerr -gt 0 ]]; then
	echo "callrelay logged $nerr ERROR lines; the kinds (count, message, error with the CallSid cut):"
	error_kinds "$RUN/callrelay.log"
fi
echo "callrelay's log and the soak's output: $RUN"
stop_pid "$CR_PID"
drop_db "$db"

for f in ${FAIL[@]+"${FAIL[@]}"}; do echo "FAIL $f"; done
if ((rc != 0 || ${#FAIL[@]})); then
	echo "SOAK FAIL"
	exit 1
fi
echo "SOAK PASS"

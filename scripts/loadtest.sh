#!/usr/bin/env bash
# loadtest.sh — load-test callrelay's voice webhook against two peers, side by side, with wrk,
# then callrelay's two busiest callbacks on the calls the voice run created.
#
# Usage: scripts/loadtest.sh            (or: make loadtest [DURATION=10s])
#
# One run, on this machine, one server at a time (never concurrently):
#   1. callrelay   POST /twilio/voice, signed webhooks, on a fresh database (dropped at the end)
#      then, callrelay only (the peers have no equivalent), on the same database and a new
#      callrelay process each (so each route has its own peak RSS):
#      1b. POST /twilio/call-status?target=0: the status callbacks of each call's forwarded leg
#          (initiated, ringing, then answered + completed, no-answer or busy; SequenceNumber,
#          RFC 2822 Timestamp, CallDuration), written in waves so a leg's arrive in order
#      1c. POST /twilio/dial-outcome?attempt=0: each call's Dial action (DialCallStatus 40%
#          completed, 45% no-answer, 15% busy; CallStatus, DialCallSid, DialCallDuration)
#      Their CallSids are the calls table's after the voice run and an unmeasured top-up (the
#      voice run's unused lines, WARMUP+DURATION again: a Dial action costs about as much as a
#      new call, so the callbacks need more calls than the measured run made); scripts/loadtest/gen
#      signs them (internal/signature.Sign, over the URL with its query), cross-checked with
#      twilio-node. Rows are checked: leg events and legs, dial-outcome events and calls moved to
#      voicemail or completed.
#   1d. whole calls, mixed (LOADTEST_MIXED=1, the default): a new callrelay on the same database;
#      scripts/loadtest/soak -ladder sends whole answered calls, each in Twilio's order: voice,
#      the leg's four status callbacks, the Dial action, the caller's own completed status
#      (time offsets of a real call ×0.1), open loop at rising rates (DURATION each, CONNECTIONS
#      connections), until a route's p99 exceeds LOADTEST_P99_MS (15) or a request fails.
#      Reported: the highest calls/s with every route's p99 within it, and each route's latency
#      at each step, measured by the client from when the request was due (so a wait for a
#      connection counts); callrelay's /metrics histogram (buckets 10/25 ms) cannot resolve 15 ms.
#   2. express     the seed tutorial's Express server (peers/express-seed), POST /webhook/voice,
#                  no database, does not check signatures
#   3. ceiling     the least a stateful Go webhook can do (peers/go-ceiling, mode pg), POST
#                  /webhook/voice, on its own fresh database; measured four times, beside each of
#                  callrelay's routes: before the voice run (ceiling-1), between it and the
#                  call-status run (ceiling-2), between call-status and dial-outcome (ceiling-3),
#                  after dial-outcome (ceiling-4)
# Each gets: start, readiness, one smoke request, a warm-up (WARMUP), then
# `wrk -t THREADS -c CONNECTIONS -d DURATION`. Every request carries a new CallSid: the webhooks
# are generated up front by the peer's signmany.js (Twilio's own Node library computes the
# X-Twilio-Signature, which also cross-checks callrelay's validator) and each line is sent once
# (scripts/loadtest/webhooks.lua). Afterwards: peak RSS (VmHWM) of the server process, its CPU
# time per request, and, for the two database servers, the rows written compared with the 2xx
# responses wrk counted.
#
# Prints a summary table and the ratios callrelay/express and callrelay/ceiling (the mean of its
# four runs), each callrelay route's ratio to the two ceiling runs beside it and to all four,
# then a table of callrelay per route, and one greppable line per server and route:
#   LOADTEST server=… route=… rps=… p50_ms=… p99_ms=… max_ms=… errors=… non2xx=… rss_mb=… …
# Exits non-zero when callrelay answered anything but 2xx (any route, by its own /metrics) or had
# socket errors, when it wrote fewer rows than it answered 2xx (voice: calls; call-status: leg
# events; dial-outcome: dial-outcome events, and calls moved to voicemail or completed), or when
# a request file ran out (voice: raise LOADTEST_MAX_RPS; callbacks: there are not enough calls,
# see the message).
# Compare ratios within one run, not absolute figures across runs: the machine is shared.
#
# The peers (express-seed, go-ceiling) are not part of this repository: LOADTEST_PEERS names the
# folder that holds them. When LOADTEST_PEERS is unset, callrelay is measured alone (its three routes; the webhooks signed by
# scripts/loadtest/gen, without twilio-node's cross-check) and the script says the peers were
# skipped. LOADTEST_PEERS set to a directory without them is an error.
#
# Environment (defaults):
#   DURATION=10s  WARMUP=3s  THREADS=2  CONNECTIONS=32     wrk parameters (same for all three)
#   LOADTEST_MAX_RPS=20000     request lines generated per second of WARMUP+DURATION
#   LOADTEST_DIR=<repo>/.data/loadtest                      scratch (builds, node_modules, logs)
#   LOADTEST_PEERS=            where the peers are (read-only; see above); unset: no peers
#   LOADTEST_TWILIO_TOKEN=loadtesttoken123                  callrelay's TWILIO_AUTH_TOKEN
#   LOADTEST_KEEP=0            1: keep the generated request files and the databases
#   LOADTEST_RUN_DIR=/dev/shm/callrelay-loadtest-<uid>-<pid>/run  where the runs write (in
#                              memory; no /dev/shm: $LOADTEST_DIR/run); copied to $LOADTEST_DIR/run
#                              at the end, and the in-memory folder removed
#   LOADTEST_DB=               an existing, migrated database to run callrelay on, kept afterwards
#                              (scripts/loadtest/growth.sh: one filled by generate.sql); its other
#                              numbers' calls are left alone. Unset: a fresh database, dropped.
#   LOADTEST_CONSOLES=0        N: N console event streams stay open through the voice run
#   LOADTEST_ROUTING_EXTRA=    more routing fields for the called number, as JSON members
#                              (e.g. '"time_zone":"America/New_York"')
#   LOADTEST_MIXED=1           0: skip the mixed run of whole calls (1d)
#   LOADTEST_MIXED_START=100   its first step, calls/s (×1.25 per step)
#   LOADTEST_P99_MS=15         its latency limit
#   PGHOST=127.0.0.1 PGPORT=5432 PGUSER=<current user>      Postgres to create the databases in
#   GO=go
# Ports: callrelay 127.0.0.1:18080, express 127.0.0.1:3111, ceiling 127.0.0.1:3113 (must be free).
# Output of the last run (server logs, wrk output) stays in $LOADTEST_DIR/run/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRATCH=${LOADTEST_DIR:-$ROOT/.data/loadtest}
PEERS=${LOADTEST_PEERS:-}
LUA=$ROOT/scripts/loadtest/webhooks.lua
KEPT=$SCRATCH/run # the run's logs and outputs, afterwards
# During the runs, everything the load test writes (the servers' stdout, wrk's output, hundreds
# of MB of signed webhooks) goes to memory when /dev/shm is there, and is copied to $KEPT at the
# end: on this one machine it would share a disk with PostgreSQL's WAL, which no deployment of
# callrelay does. There, the WAL's flushes (every webhook's commit) waited 17-70 ms now and then,
# and every request in flight with them, 40-170 ms (docs/performance.md).
MEM= # the in-memory folder this run made, removed at the end
if [[ -n ${LOADTEST_RUN_DIR:-} ]]; then
	RUN=$LOADTEST_RUN_DIR
elif [[ -d /dev/shm && -w /dev/shm ]]; then
	MEM=/dev/shm/callrelay-loadtest-$(id -u)-$$
	RUN=$MEM/run
else
	RUN=$KEPT
fi

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
MAX_RPS=${LOADTEST_MAX_RPS:-20000}
TOKEN=${LOADTEST_TWILIO_TOKEN:-loadtesttoken123}
KEEP=${LOADTEST_KEEP:-0}
GO=${GO:-go}
export PATH=$PATH:/usr/local/go/bin

export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-$(id -un)}

CR_ADDR=127.0.0.1:18080
CR_URL=http://$CR_ADDR
EXPRESS_PORT=3111
EXPRESS_URL=http://127.0.0.1:$EXPRESS_PORT
CEIL_ADDR=127.0.0.1:3113
CEIL_URL=http://$CEIL_ADDR
NUMBER=+15551230000 # the masked number called (To); the ceiling peer knows only this one
CALLER=+15559870000 # From
FORWARD=+15550001111

LOG_NAME=loadtest
# shellcheck source=loadtest/lib.sh
. "$ROOT/scripts/loadtest/lib.sh"

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_everything
	if [[ $KEEP != 1 ]]; then
		rm -f "$RUN"/webhooks*.tsv "$RUN"/calls.txt
	fi
	if [[ $RUN != "$KEPT" && -d $RUN ]]; then
		# The logs, outputs and emails (and, with LOADTEST_KEEP=1, the request files) to disk.
		mkdir -p "$KEPT"
		find "$KEPT" -mindepth 1 -maxdepth 1 -exec rm -rf {} + || true
		find "$RUN" -mindepth 1 -maxdepth 1 -exec cp -a {} "$KEPT"/ \; || true
	fi
	[[ -z $MEM ]] || rm -rf "$MEM"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 1. tools, builds, peers -------------------------------------------------------------------
MIXED=${LOADTEST_MIXED:-1}

[[ -f $LUA ]] || die "$LUA is missing"
if [[ -n $PEERS && -d $PEERS/express-seed && -d $PEERS/go-ceiling ]]; then
	HAVE_PEERS=1
	PEERS=$(cd "$PEERS" && pwd)
elif [[ -n ${LOADTEST_PEERS:-} ]]; then
	die "LOADTEST_PEERS=$LOADTEST_PEERS: no express-seed and go-ceiling peers there"
else
	HAVE_PEERS=0
	log "PEERS NOT FOUND: no express-seed and go-ceiling under $PEERS (set LOADTEST_PEERS to where they are)."
	log "  Measuring callrelay alone; the express and go-ceiling comparisons are SKIPPED."
fi
DUR_S=$(seconds "$DURATION") || die "DURATION=$DURATION: want whole seconds, e.g. 10s or 1m"
WARM_S=$(seconds "$WARMUP") || die "WARMUP=$WARMUP: want whole seconds, e.g. 3s"
((DUR_S >= 1 && DUR_S <= 600)) || die "DURATION=$DURATION: between 1s and 10m, please"
((WARM_S >= 1 && WARM_S <= 60)) || die "WARMUP=$WARMUP: between 1s and 60s, please"
((THREADS >= 1 && CONNECTIONS >= THREADS)) || die "THREADS=$THREADS CONNECTIONS=$CONNECTIONS: need CONNECTIONS >= THREADS >= 1"

TOOLS=(curl psql "$GO" awk od jq)
((HAVE_PEERS)) && TOOLS+=(node npm)
for c in "${TOOLS[@]}"; do
	command -v "$c" >/dev/null 2>&1 || die "$c not found on PATH"
done
need_wrk

psql_admin 'SELECT 1' >/dev/null 2>&1 ||
	die "cannot log in to Postgres at $PGHOST:$PGPORT as $PGUSER (set PGHOST, PGPORT, PGUSER)"
port_free 127.0.0.1 18080 || die "127.0.0.1:18080 is in use: another callrelay (or load test) is running"
if ((HAVE_PEERS)); then
	port_free 127.0.0.1 "$EXPRESS_PORT" || die "127.0.0.1:$EXPRESS_PORT is in use"
	port_free 127.0.0.1 3113 || die "127.0.0.1:3113 is in use"
fi

mkdir -p "$SCRATCH" "$RUN"
rm -f "$RUN"/*.log "$RUN"/*.out "$RUN"/*.body "$RUN"/webhooks*.tsv "$RUN"/calls.txt "$RUN"/callrelay*.metrics.*

REV=$(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown)
log "building callrelay ($REV; the working tree as it is now)"
(cd "$ROOT" && "$GO" build -o "$SCRATCH/callrelay" ./cmd/callrelay) || die "go build ./cmd/callrelay failed"
(cd "$ROOT" && "$GO" build -o "$SCRATCH/gen" ./scripts/loadtest/gen) || die "go build ./scripts/loadtest/gen failed"
(cd "$ROOT" && "$GO" build -o "$SCRATCH/soak" ./scripts/loadtest/soak) || die "go build ./scripts/loadtest/soak failed"
(cd "$ROOT" && "$GO" build -o "$SCRATCH/console" ./scripts/loadtest/console) || die "go build ./scripts/loadtest/console failed"

EXP=$SCRATCH/express-seed
TWILIO_NODE=
if ((HAVE_PEERS)); then
	log "building the go-ceiling peer"
	rm -rf "$SCRATCH/go-ceiling"
	cp -R "$PEERS/go-ceiling" "$SCRATCH/go-ceiling"
	chmod -R u+w "$SCRATCH/go-ceiling"
	(cd "$SCRATCH/go-ceiling" && "$GO" build -o "$SCRATCH/ceiling" .) || die "go build of the go-ceiling peer failed"

	# The express peer: a scratch copy; npm install only when node_modules is missing or the peer's
	# package files changed since the last install.
	mkdir -p "$EXP"
	for f in package.json package-lock.json server.js sign.js signmany.js; do
		[[ -f $PEERS/express-seed/$f ]] || continue
		install -m 0644 "$PEERS/express-seed/$f" "$EXP/$f.peer"
	done
	stamp=$(cat "$EXP/package.json.peer" "$EXP/package-lock.json.peer" 2>/dev/null | sha256sum | cut -c1-16)
	if [[ ! -d $EXP/node_modules || $(cat "$EXP/.installed" 2>/dev/null) != "$stamp" ]]; then
		for f in "$EXP"/*.peer; do cp "$f" "${f%.peer}"; done
		log "npm install in $EXP"
		(cd "$EXP" && npm install --no-audit --no-fund --loglevel=error >&2) || die "npm install failed in $EXP"
		echo "$stamp" >"$EXP/.installed"
	else
		for f in server.js sign.js signmany.js; do
			[[ -f $EXP/$f.peer ]] && cp "$EXP/$f.peer" "$EXP/$f"
		done
		log "express peer: node_modules cached ($EXP)"
	fi
	rm -f "$EXP"/*.peer
	TWILIO_NODE=$(cd "$EXP" && node -p 'require("twilio/package.json").version')
fi

# The machine is shared: a busy one makes every figure noisy (ratios suffer least).
LOAD_START=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$LOAD_START" -v n="$(nproc)" 'BEGIN { exit !(l > n) }'; then
	log "warning: load average $LOAD_START on $(nproc) cores before the run: other work is running, figures will be noisy"
fi

# --- 2. signed webhooks --------------------------------------------------------------------------
# One file for all three servers (each has its own state): line 1 is the smoke request, the next
# WARM_S*MAX_RPS lines the warm-up, the rest the measured run. Every CallSid is distinct.

N_WARM=$((WARM_S * MAX_RPS))
N_MAIN=$((DUR_S * MAX_RPS))
N=$((1 + N_WARM + N_MAIN))
SIGNED_URL=$CR_URL/twilio/voice # what Twilio signs: CALLRELAY_PUBLIC_URL + path
ALL=$RUN/webhooks.tsv
t0=$(now_ms)
if ((HAVE_PEERS)); then
	SIGNER="twilio-node $TWILIO_NODE, signmany.js"
	log "generating $N signed webhooks ($SIGNER) for $SIGNED_URL"
	(cd "$EXP" && node signmany.js "$TOKEN" "$SIGNED_URL" "$N" "$NUMBER" "$CALLER") >"$ALL" ||
		die "signmany.js failed"
else
	SIGNER="scripts/loadtest/gen, internal/signature"
	log "generating $N signed webhooks ($SIGNER; no twilio-node without the peers) for $SIGNED_URL"
	"$SCRATCH/gen" -route /twilio/voice -url "$CR_URL" -token "$TOKEN" -n "$N" \
		-number "$NUMBER" -from "$CALLER" -target "$FORWARD" >"$ALL" || die "gen -route /twilio/voice failed"
fi
GEN_MS=$(($(now_ms) - t0))
lines=$(wc -l <"$ALL")
[[ $lines -eq $N ]] || die "the generator wrote $lines lines, want $N"
dups=$(awk -F'CallSid=' '{ split($2, a, "&"); if (seen[a[1]]++) d++ } END { print d + 0 }' "$ALL")
[[ $dups -eq 0 ]] || die "the generated webhooks repeat $dups CallSids"
head -n 1 "$ALL" >"$RUN/webhooks.smoke.tsv"
sed -n "2,$((1 + N_WARM))p" "$ALL" >"$RUN/webhooks.warm.tsv"
tail -n "+$((2 + N_WARM))" "$ALL" >"$RUN/webhooks.main.tsv"
rm -f "$ALL"
log "generated $N lines in $((GEN_MS / 1000)).$(printf '%03d' $((GEN_MS % 1000)))s ($((N * 1000 / (GEN_MS > 0 ? GEN_MS : 1))) lines/s): 1 smoke, $N_WARM warm-up, $N_MAIN measured (enough for $MAX_RPS req/s)"

# The smoke line's signature, recomputed without Twilio's library (Node's crypto over URL +
# params sorted by name): a mismatch would mean the generator and Twilio's algorithm disagree.
SMOKE_LINE=$(cat "$RUN/webhooks.smoke.tsv")
independent_sig() {
	node -e '
		const crypto = require("crypto");
		const [token, url, line] = process.argv.slice(1);
		const p = new URLSearchParams(line.split("\t")[1]);
		let data = url;
		for (const k of [...p.keys()].sort()) data += k + p.getAll(k).sort().join(k);
		process.stdout.write(crypto.createHmac("sha1", token).update(data).digest("base64"));
	' "$TOKEN" "$1" "$2"
}
SMOKE_SIG=${SMOKE_LINE%%$'\t'*}
SMOKE_BODY=${SMOKE_LINE#*$'\t'}
if command -v node >/dev/null 2>&1; then
	INDEP_SIG=$(independent_sig "$SIGNED_URL" "$SMOKE_LINE")
	if [[ $INDEP_SIG == "$SMOKE_SIG" ]]; then
		log "signature cross-check: $SIGNER and an independent HMAC-SHA1 agree ($SMOKE_SIG)"
	else
		log "warning: $SIGNER signed $SMOKE_SIG, an independent HMAC-SHA1 over the same URL and params gives $INDEP_SIG"
	fi
else
	INDEP_SIG="(not computed: no node)"
	log "signature cross-check skipped: node not found"
fi

# --- 3/4. the runs -------------------------------------------------------------------------------

declare -A R # R[name.key]: results

# wrk_run NAME URL FILE DURATION OUT: run wrk with webhooks.lua; the RESULT fields go to R[NAME.*].
wrk_run() {
	local name=$1 url=$2 file=$3 dur=$4 out=$5 secs kv
	secs=$(seconds "$dur")
	# --foreground: wrk stays in our process group, so Ctrl-C reaches it (it stops and reports).
	timeout --foreground --signal=INT --kill-after=10 $((secs + 60)) \
		wrk -t"$THREADS" -c"$CONNECTIONS" -d"$dur" --latency -s "$LUA" "$url" -- "$file" "$THREADS" "$name" \
		>"$out" 2>&1 || {
		cat "$out" >&2
		die "wrk failed against $name ($url)"
	}
	local result
	result=$(grep '^RESULT ' "$out" | tail -n 1) || {
		cat "$out" >&2
		die "wrk printed no RESULT line against $name"
	}
	for kv in ${result#RESULT }; do
		R[$name.${kv%%=*}]=${kv#*=}
	done
}

# pg_wal_reading: the server's checkpoints so far, WAL bytes and full-page images (pg_stat_wal,
# PostgreSQL 14+; "- - -" when unreadable). pg_wal_during NAME BEFORE AFTER: what the measured
# run cost, in R[NAME.checkpoints], R[NAME.wal_mb], R[NAME.fpi]. A checkpoint that starts during
# a run makes every page a callback touches first afterwards write a full-page image into the
# WAL: the callbacks, which update calls all over their tables, then write far more WAL
# (docs/performance.md). This shows which runs a checkpoint fell into. The fourth figure is
# how many files pg_wal holds (pg_ls_waldir: a superuser or pg_monitor; "-" otherwise): one
# more during a run is a WAL file PostgreSQL had to make then, zero-filled while every commit
# waits (min_wal_size, docs/operations.md), unless a checkpoint that ended meanwhile removed some.
pg_wal_reading() {
	local files
	files=$(psql_admin "SELECT count(*) FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$'" 2>/dev/null) || files=-
	psql_admin "SELECT (SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter) || ' ' || wal_bytes || ' ' || wal_fpi || ' $files' FROM pg_stat_wal" 2>/dev/null ||
		echo "- - - -"
}
pg_wal_during() {
	local name=$1 a b
	read -r -a a <<<"$2"
	read -r -a b <<<"$3"
	if [[ ${a[0]} == - || ${b[0]} == - ]]; then
		R[$name.checkpoints]=- R[$name.wal_mb]=- R[$name.fpi]=- R[$name.wal_files]=-
		return
	fi
	R[$name.checkpoints]=$((b[0] - a[0]))
	R[$name.wal_mb]=$(awk -v d=$((b[1] - a[1])) 'BEGIN { printf "%.0f", d / 1048576 }')
	R[$name.fpi]=$((b[2] - a[2]))
	if [[ ${a[3]} == - || ${b[3]} == - ]]; then
		R[$name.wal_files]=-
	else
		R[$name.wal_files]=$(printf '%+d' $((b[3] - a[3])))
	fi
}

# measure NAME URL PID DB: warm-up, then the measured run, with CPU, RSS and row counts.
# DB is the database whose TABLE (R[NAME.table], a FROM clause: "calls", "call_events WHERE …")
# gets the rows (R[NAME.rows]; R[NAME.table2], if set, is counted too: R[NAME.rows2]); empty for
# none. The request files are $RUN/R[NAME.files].{warm,main}.tsv
# (default webhooks); for callrelay's runs (R[NAME.metrics] set) /metrics is saved before and
# after the measured run.
measure() {
	local name=$1 url=$2 pid=$3 db=$4 table=${R[$1.table]:-} before=0 after c0 c1 m0 m1 t0 t1 before2=0
	local files=$RUN/${R[$1.files]:-webhooks} metrics=${R[$1.metrics]:-}
	log "$name: warm-up $WARMUP"
	wrk_run "$name" "$url" "$files.warm.tsv" "$WARMUP" "$RUN/$name.warmup.out"
	kill -0 "$pid" 2>/dev/null || die "$name exited during the warm-up (log: $RUN/$name.log)"
	log "$name: warm-up $(grep '^RESULT' "$RUN/$name.warmup.out" | cut -d' ' -f3-)"
	if [[ ${R[$name.exhausted]} -ne 0 && -z ${R[$name.files]:-} ]]; then
		log "warning: $name: the warm-up used up its lines (fine, but raise LOADTEST_MAX_RPS)"
	elif [[ ${R[$name.exhausted]} -ne 0 ]]; then
		log "warning: $name: the warm-up used up its lines: the measured run will likely run out too"
	fi
	[[ -z $db ]] || before=$(psql_db "$db" "SELECT count(*) FROM $table")
	[[ -z ${R[$name.table2]:-} ]] || before2=$(psql_db "$db" "SELECT count(*) FROM ${R[$name.table2]}")
	if [[ -n $metrics ]]; then
		curl -s --max-time 5 "$metrics" -o "$RUN/$name.metrics.before" || true
	fi
	local w0 w1
	w0=$(pg_wal_reading)
	c0=$(cpu_ticks "$pid")
	read -r m0 t0 < <(machine_ticks)
	log "$name: wrk -t$THREADS -c$CONNECTIONS -d$DURATION $url"
	wrk_run "$name" "$url" "$files.main.tsv" "$DURATION" "$RUN/$name.wrk.out"
	kill -0 "$pid" 2>/dev/null || die "$name exited during the run (log: $RUN/$name.log)"
	c1=$(cpu_ticks "$pid")
	read -r m1 t1 < <(machine_ticks)
	w1=$(pg_wal_reading)
	pg_wal_during "$name" "$w0" "$w1"
	sleep 1 # let requests still in flight when wrk stopped finish
	R[$name.rss]=$(vmhwm_mb "$pid")
	local hz reqs=${R[$name.requests]}
	hz=$(getconf CLK_TCK)
	R[$name.cpu_us]=$(awk -v d=$((c1 - c0)) -v hz="$hz" -v n="$reqs" 'BEGIN { printf "%.0f", n ? d / hz * 1e6 / n : 0 }')
	R[$name.busy]=$(awk -v b=$((m1 - m0)) -v t=$((t1 - t0)) 'BEGIN { printf "%.0f", t ? 100 * b / t : 0 }')
	R[$name.ok]=$((reqs - R[$name.non2xx]))
	if [[ -n $db ]]; then
		after=$(psql_db "$db" "SELECT count(*) FROM $table")
		R[$name.rows]=$((after - before))
		if [[ -n ${R[$name.table2]:-} ]]; then
			R[$name.rows2]=$(($(psql_db "$db" "SELECT count(*) FROM ${R[$name.table2]}") - before2))
		fi
	else
		R[$name.rows]=-
	fi
	if [[ -n $metrics ]]; then
		curl -s --max-time 5 "$metrics" -o "$RUN/$name.metrics.after" || true
	fi
	log "$name: $(grep '^RESULT' "$RUN/$name.wrk.out" | cut -d' ' -f3-) rss_mb=${R[$name.rss]} rows=${R[$name.rows]}"
}

# route_metrics NAME ROUTE: from callrelay's /metrics around NAME's measured run, the answers to
# ROUTE by kind: R[NAME.m200], R[NAME.m2xx] (any 2xx), R[NAME.mnon2xx] (anything else),
# R[NAME.m403], R[NAME.m5] (5xx), and R[NAME.fallbacks] (answered without the database).
route_metrics() {
	local name=$1 route="route=\"$2\"" kind a b
	local before=$RUN/$name.metrics.before after=$RUN/$name.metrics.after
	for kind in 200 2 403 5 ''; do
		b=$(metric_sum "$before" "^callrelay_http_requests_total.*code=\"$kind.*$route")
		a=$(metric_sum "$after" "^callrelay_http_requests_total.*code=\"$kind.*$route")
		case $kind in
		2) R[$name.m2xx]=$((a - b)) ;;
		'') R[$name.mall]=$((a - b)) ;;
		*) R[$name.m$kind]=$((a - b)) ;;
		esac
	done
	R[$name.mnon2xx]=$((R[$name.mall] - R[$name.m2xx]))
	R[$name.fallbacks]=$(($(metric_sum "$after" "^callrelay_webhook_fallbacks_total.*$route") -
		$(metric_sum "$before" "^callrelay_webhook_fallbacks_total.*$route")))
}

# smoke NAME URL: POST the smoke line once; prints the status code, the body goes to a file.
smoke() {
	curl -s -o "$RUN/$1.smoke.body" -w '%{http_code}' --max-time 10 \
		-H 'Content-Type: application/x-www-form-urlencoded' -H "X-Twilio-Signature: $SMOKE_SIG" \
		--data-binary "$SMOKE_BODY" "$2" || echo 000
}

# signature_report: why callrelay refused the smoke webhook with 403.
signature_report() {
	log "callrelay answered 403 to a webhook signed by $SIGNER:"
	log "  signed URL:        $SIGNED_URL (CALLRELAY_PUBLIC_URL=$CR_URL + /twilio/voice)"
	log "  params (sorted):   $(tr '&' '\n' <<<"$SMOKE_BODY" | LC_ALL=C sort -t= -k1,1 -s | tr '\n' ' ')"
	log "  X-Twilio-Signature $SMOKE_SIG ($SIGNER), independent HMAC-SHA1: $INDEP_SIG"
	log "  callrelay says:    $(grep -m1 'bad signature' "$RUN/callrelay.log" || echo '(nothing logged)')"
}

FAIL=()

# ceiling_run NAME: the go-ceiling peer on a database of its own, measured as NAME (its voice
# webhook, on the same request lines as callrelay's), then stopped and its database dropped.
# It runs beside each of callrelay's routes, before and after it (ceiling-1 … ceiling-4), and
# each route is compared with the mean of those two: on this kind of machine a process's speed
# moves by a fifth from one minute to the next, so a ceiling measured once, minutes away from a
# route, moved that route's ratio as much as a change to callrelay did.
ceiling_run() {
	local name=$1 db code
	((HAVE_PEERS)) || return 0
	db=callrelay_ceil_$(hex 4)
	log "$name: the go-ceiling peer, database $db, listening on $CEIL_ADDR"
	create_db "$db"
	DATABASE_URL=$(db_url "$db") "$SCRATCH/ceiling" pg "$CEIL_ADDR" >"$RUN/$name.log" 2>&1 &
	CEIL_PID=$!
	PIDS+=("$CEIL_PID")
	wait_http "$CEIL_URL/" "$CEIL_PID" 30 || {
		tail -n 20 "$RUN/$name.log" >&2
		die "the go-ceiling peer did not start (log: $RUN/$name.log)"
	}
	code=$(smoke "$name" "$CEIL_URL/webhook/voice")
	[[ $code == 200 ]] || die "$name: smoke webhook answered $code: $(head -c 300 "$RUN/$name.smoke.body")"
	R[$name.table]=ceil_calls
	measure "$name" "$CEIL_URL/webhook/voice" "$CEIL_PID" "$db"
	stop_pid "$CEIL_PID"
	drop_db "$db"
	CEILINGS+=("$name")
}
CEILINGS=()

ceiling_run ceiling-1

# callrelay ------------------------------------------------------------------------------------
if [[ -n ${LOADTEST_DB:-} ]]; then
	CR_DB=$LOADTEST_DB
	log "callrelay: database $CR_DB (LOADTEST_DB: kept), listening on $CR_ADDR"
	psql_db "$CR_DB" 'SELECT 1 FROM calls LIMIT 1' >/dev/null || die "LOADTEST_DB=$CR_DB: not a migrated callrelay database"
else
	CR_DB=callrelay_load_$(hex 4)
	log "callrelay: database $CR_DB, listening on $CR_ADDR"
	create_db "$CR_DB"
fi
CR_DBURL=$(db_url "$CR_DB")
# This run's calls: those of NUMBER started from now on (a LOADTEST_DB may hold an earlier run's,
# whose callbacks were applied and would write nothing again).
RUN_CALLS="number = '$NUMBER' AND started_at >= '$(psql_db "$CR_DB" "SELECT now()")'"
OPS=$(hex 24)
start_callrelay "$SCRATCH/callrelay" "$CR_DBURL" "$CR_ADDR" "$OPS" "$TOKEN" "$RUN/callrelay.log" "$RUN/mail"
put_number "$CR_ADDR" "$OPS" "$NUMBER" "$FORWARD" "$RUN/callrelay.number.json"
code=$(smoke callrelay "$CR_URL/twilio/voice")
if [[ $code == 403 ]]; then
	signature_report
	die "callrelay refused a Twilio-signed webhook (403): signature mismatch, see above"
fi
[[ $code == 200 ]] || die "callrelay: smoke webhook answered $code: $(head -c 500 "$RUN/callrelay.smoke.body")"
grep -q '<Dial' "$RUN/callrelay.smoke.body" ||
	die "callrelay: smoke webhook answered 200 without <Dial>: $(head -c 500 "$RUN/callrelay.smoke.body")"
log "callrelay: ready; smoke webhook 200 with <Dial>"
R[callrelay.table]=calls
R[callrelay.metrics]=$CR_URL/metrics
R[callrelay.route]=/twilio/voice
# LOADTEST_CONSOLES=N: N browsers' console event streams stay open on callrelay through the
# voice run (scripts/loadtest/console), as ops with the live page open would.
CONSOLE_PID=
if ((${LOADTEST_CONSOLES:-0} > 0)); then
	"$SCRATCH/console" -url "$CR_URL" -token "$OPS" -n "$LOADTEST_CONSOLES" -duration "$((WARM_S + DUR_S + 20))s" \
		>"$RUN/console.out" 2>"$RUN/console.err" &
	CONSOLE_PID=$!
	for _ in $(seq 50); do
		[[ $(metric_sum <(curl -s "$CR_URL/metrics") '^callrelay_console_streams') -ge $LOADTEST_CONSOLES ]] 2>/dev/null && break
		sleep 0.1
	done
	log "callrelay: $LOADTEST_CONSOLES console event streams open through the voice run"
fi
measure callrelay "$CR_URL/twilio/voice" "$CR_PID" "$CR_DB"
if [[ -n $CONSOLE_PID ]]; then
	kill "$CONSOLE_PID" 2>/dev/null || true
	wait "$CONSOLE_PID" 2>/dev/null || true
	log "callrelay: consoles: $(cat "$RUN/console.out" "$RUN/console.err" | tr '\n' ' ')"
fi
route_metrics callrelay /twilio/voice
R[callrelay.fallbacks_all]=$(metric_sum "$RUN/callrelay.metrics.after" '^callrelay_webhook_fallbacks_total')
R[callrelay.sigfail]=$(metric_sum "$RUN/callrelay.metrics.after" '^callrelay_twilio_signature_failures_total')
# More calls for the callbacks, unmeasured: the measured run's unused lines for WARMUP+DURATION
# again. A Dial action costs callrelay about as much as a new call, so the calls of the voice run
# alone leave its run little margin. Skipped lines: those the run sent, and some, since its
# threads read the file interleaved (a repeat would only answer again and write nothing).
skip=$((R[callrelay.sent] + R[callrelay.sent] / 10 + 1000))
tail -n "+$skip" "$RUN/webhooks.main.tsv" >"$RUN/webhooks.topup.tsv"
calls0=$(psql_db "$CR_DB" "SELECT count(*) FROM calls WHERE $RUN_CALLS")
log "callrelay: more calls for the callbacks (unmeasured): wrk -d$((WARM_S + DUR_S))s on the voice run's unused lines"
wrk_run callrelay-topup "$CR_URL/twilio/voice" "$RUN/webhooks.topup.tsv" "$((WARM_S + DUR_S))s" "$RUN/callrelay-topup.out"
rm -f "$RUN/webhooks.topup.tsv"
R[callrelay.topup]=$(($(psql_db "$CR_DB" "SELECT count(*) FROM calls WHERE $RUN_CALLS") - calls0))
stop_pid "$CR_PID"
ceiling_run ceiling-2

# callrelay's callbacks ------------------------------------------------------------------------
# The calls the voice run created (smoke, warm-up, measured, top-up), oldest first: the callbacks
# hit them, in that order, call-status first (the legs), then dial-outcome (the Dial actions).
CALLS=$RUN/calls.txt
psql_db "$CR_DB" "SELECT call_sid FROM calls WHERE $RUN_CALLS ORDER BY started_at, call_sid" >"$CALLS"
N_CALLS=$(wc -l <"$CALLS")
((N_CALLS > 10)) || die "the voice run left $N_CALLS calls: too few for the callbacks"
log "callbacks: $N_CALLS calls from the voice run (${R[callrelay.topup]} of them from the top-up)"

# split_lines FILE PREFIX: line 1 of FILE → PREFIX.smoke.tsv, then a WARMUP/(WARMUP+DURATION)
# share of the rest → PREFIX.warm.tsv, the others → PREFIX.main.tsv. Sets N_LINES.
split_lines() {
	local file=$1 prefix=$2 warm
	N_LINES=$(wc -l <"$file")
	warm=$(((N_LINES - 1) * WARM_S / (WARM_S + DUR_S)))
	head -n 1 "$file" >"$prefix.smoke.tsv"
	sed -n "2,$((1 + warm))p" "$file" >"$prefix.warm.tsv"
	tail -n "+$((2 + warm))" "$file" >"$prefix.main.tsv"
	rm -f "$file"
}

# node_sig URL LINE: the signature twilio-node computes for the line's params and URL.
node_sig() {
	(cd "$EXP" && node -e '
		const twilio = require("twilio");
		const [token, url, line] = process.argv.slice(1);
		const p = Object.fromEntries(new URLSearchParams(line.split("\t")[1]));
		process.stdout.write(twilio.getExpectedTwilioSignature(token, url, p));
	' "$TOKEN" "$1" "$2")
}

# callback NAME ROUTE WANT_CODE WANT_BODY COUNT_FROM: generate the route's webhooks for every
# call, cross-check one signature with twilio-node, start a new callrelay on the voice run's
# database, smoke-test, measure, read its metrics, stop it.
callback() {
	local name=$1 route=$2 want_code=$3 want_body=$4 count_from=$5 url line sig body code want_sig
	url=$("$SCRATCH/gen" -route "$route" -url "$CR_URL" -print-url) || die "gen -print-url failed"
	log "$name: generating $route webhooks for $N_CALLS calls (scripts/loadtest/gen), signed for $url"
	"$SCRATCH/gen" -route "$route" -url "$CR_URL" -token "$TOKEN" -calls "$CALLS" \
		-number "$NUMBER" -from "$CALLER" -target "$FORWARD" >"$RUN/webhooks-$name.tsv" ||
		die "gen -route $route failed"
	split_lines "$RUN/webhooks-$name.tsv" "$RUN/webhooks-$name"
	R[$name.lines]=$N_LINES
	line=$(cat "$RUN/webhooks-$name.smoke.tsv")
	sig=${line%%$'\t'*}
	body=${line#*$'\t'}
	if ((HAVE_PEERS)); then
		want_sig=$(node_sig "$url" "$line")
		[[ $sig == "$want_sig" ]] ||
			die "$name: gen signed $sig, twilio-node $TWILIO_NODE signs $want_sig for $url and the same params"
		log "$name: signature cross-check with twilio-node $TWILIO_NODE: agree ($sig)"
	else
		log "$name: no twilio-node cross-check of gen's signatures (peers not found)"
	fi

	start_callrelay "$SCRATCH/callrelay" "$CR_DBURL" "$CR_ADDR" "$OPS" "$TOKEN" "$RUN/$name.log" "$RUN/mail"
	code=$(curl -s -o "$RUN/$name.smoke.body" -w '%{http_code}' --max-time 10 \
		-H 'Content-Type: application/x-www-form-urlencoded' -H "X-Twilio-Signature: $sig" \
		--data-binary "$body" "$url" || echo 000)
	[[ $code == "$want_code" ]] ||
		die "$name: smoke webhook answered $code (want $want_code): $(head -c 500 "$RUN/$name.smoke.body")"
	[[ -z $want_body ]] || grep -q "$want_body" "$RUN/$name.smoke.body" ||
		die "$name: smoke webhook answered without $want_body: $(head -c 500 "$RUN/$name.smoke.body")"
	log "$name: ready; smoke webhook $code${want_body:+ with $want_body}"
	R[$name.table]=$count_from
	R[$name.files]=webhooks-$name
	R[$name.metrics]=$CR_URL/metrics
	R[$name.route]=$route
	measure "$name" "$url" "$CR_PID" "$CR_DB"
	route_metrics "$name" "$route"
	stop_pid "$CR_PID"
}

# Leg status callbacks: each 2xx adds one 'leg' event (one per leg and status); rows2: legs.
R[callrelay-status.table2]=legs
callback callrelay-status /twilio/call-status 204 '' "call_events WHERE type = 'leg'"
R[callrelay-status.answered]=$(psql_db "$CR_DB" "SELECT count(*) FROM calls WHERE $RUN_CALLS AND callee_call_sid IS NOT NULL")
ceiling_run ceiling-3

# Dial actions: each 2xx adds one 'dial-outcome' event and moves its call to voicemail (nobody
# answered) or completed (answered, or the caller hung up): rows2.
R[callrelay-dial.table2]="calls WHERE status IN ('voicemail', 'completed')"
callback callrelay-dial /twilio/dial-outcome 200 '<Response' "call_events WHERE type = 'dial-outcome'"
R[callrelay-dial.statuses]=$(psql_db "$CR_DB" "SELECT string_agg(status || '=' || n, ' ' ORDER BY status) FROM (SELECT status, count(*) n FROM calls WHERE $RUN_CALLS GROUP BY status) s")
ceiling_run ceiling-4

# Whole calls, mixed (1d) ------------------------------------------------------------------------
if [[ $MIXED == 1 ]]; then
	start_callrelay "$SCRATCH/callrelay" "$CR_DBURL" "$CR_ADDR" "$OPS" "$TOKEN" "$RUN/callrelay-mixed.log" "$RUN/mail"
	log "mixed: whole answered calls, rising rates from ${LOADTEST_MIXED_START:-100} calls/s, $DURATION a step, $CONNECTIONS connections"
	mixed_calls0=$(psql_db "$CR_DB" "SELECT count(*) FROM calls WHERE $RUN_CALLS")
	mixed_rc=0
	"$SCRATCH/soak" -url "$CR_URL" -token "$TOKEN" -ladder -duration "$DURATION" -conns "$CONNECTIONS" \
		-ladder-start "${LOADTEST_MIXED_START:-100}" -p99-ms "${LOADTEST_P99_MS:-15}" \
		-number "$NUMBER" -from "$CALLER" -target "$FORWARD" >"$RUN/mixed.out" 2>&1 || mixed_rc=$?
	sleep 1
	R[mixed.calls]=$(($(psql_db "$CR_DB" "SELECT count(*) FROM calls WHERE $RUN_CALLS") - mixed_calls0))
	R[mixed.best]=$(sed -n 's/^LADDER_BEST calls_s=\([0-9]*\).*/\1/p' "$RUN/mixed.out")
	[[ -n ${R[mixed.best]} ]] || {
		cat "$RUN/mixed.out" >&2
		die "mixed: the ladder printed no LADDER_BEST"
	}
	((mixed_rc == 0)) || FAIL+=("mixed: a whole call's webhook failed (see $RUN/mixed.out)")
	log "mixed: ${R[mixed.best]} calls/s with every route's p99 <= ${LOADTEST_P99_MS:-15} ms"
	stop_pid "$CR_PID"
fi
[[ -n ${LOADTEST_DB:-} ]] || drop_db "$CR_DB"

RUNS=(callrelay)
if ((HAVE_PEERS)); then
	# express ------------------------------------------------------------------------------------
	log "express: node server.js on 127.0.0.1:$EXPRESS_PORT"
	(cd "$EXP" && PORT=$EXPRESS_PORT exec node server.js) >"$RUN/express.log" 2>&1 &
	EXP_PID=$!
	PIDS+=("$EXP_PID")
	wait_http "$EXPRESS_URL/" "$EXP_PID" 30 || {
		tail -n 20 "$RUN/express.log" >&2
		die "the express peer did not start (log: $RUN/express.log)"
	}
	code=$(smoke express "$EXPRESS_URL/webhook/voice")
	[[ $code == 200 ]] || die "express: smoke webhook answered $code"
	measure express "$EXPRESS_URL/webhook/voice" "$EXP_PID" ""
	stop_pid "$EXP_PID"

	RUNS+=(express)
else
	log "express and go-ceiling: SKIPPED (peers not found under $PEERS)"
fi

# --- 5. summary ----------------------------------------------------------------------------------

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }
# mean KEY RUN…: the mean of R[RUN.KEY] over the runs, rounded to 0.1.
mean() {
	local k=$1 n
	shift
	for n in "$@"; do echo "${R[$n.$k]}"; done | awk '{ s += $1; c++ } END { printf "%.1f", c ? s / c : 0 }'
}
# The ceiling: each of its runs in the tables, and their mean for the ratios to all of them.
if ((${#CEILINGS[@]})); then
	RUNS+=("${CEILINGS[@]}")
	for k in rps p50_ms p99_ms rss; do R[ceiling.$k]=$(mean "$k" "${CEILINGS[@]}"); done
fi
# Each callrelay route and the ceiling runs just before and just after it.
declare -A BESIDE=([callrelay]="ceiling-1 ceiling-2" [callrelay-status]="ceiling-2 ceiling-3" [callrelay-dial]="ceiling-3 ceiling-4")

echo
echo "callrelay load test — $(date -u +%Y-%m-%dT%H:%M:%SZ), callrelay $REV, $(nproc) cores, wrk -t$THREADS -c$CONNECTIONS -d$DURATION (warm-up $WARMUP), $N_MAIN request lines (generated in $((GEN_MS / 1000)).$(printf '%03d' $((GEN_MS % 1000)))s), load average at start $LOAD_START"
fmt='%-10s %10s %8s %8s %9s %7s %8s %8s %9s %6s %9s %9s\n'
# shellcheck disable=SC2059
printf "$fmt" name 'req/s' 'p50 ms' 'p99 ms' 'max ms' errors non-2xx 'RSS MB' 'cpu us/r' 'busy%' 2xx rows
for n in "${RUNS[@]}"; do
	# shellcheck disable=SC2059
	printf "$fmt" "$n" "${R[$n.rps]}" "${R[$n.p50_ms]}" "${R[$n.p99_ms]}" "${R[$n.max_ms]}" "${R[$n.errors]}" \
		"${R[$n.non2xx]}" "${R[$n.rss]}" "${R[$n.cpu_us]}" "${R[$n.busy]}" "${R[$n.ok]}" "${R[$n.rows]}"
done
echo
if ((HAVE_PEERS)); then
	printf '%-20s %8s %8s %8s %8s\n' ratio 'req/s' p50 p99 RSS
	for peer in express ceiling; do
		printf '%-20s %8s %8s %8s %8s\n' "callrelay/$peer" \
			"$(ratio "${R[callrelay.rps]}" "${R[$peer.rps]}")" "$(ratio "${R[callrelay.p50_ms]}" "${R[$peer.p50_ms]}")" \
			"$(ratio "${R[callrelay.p99_ms]}" "${R[$peer.p99_ms]}")" "$(ratio "${R[callrelay.rss]}" "${R[$peer.rss]}")"
	done
	echo "(ceiling: the mean of ${CEILINGS[*]})"
	echo
	echo "callrelay's routes against the Go+pg ceiling measured just before and just after each (their mean), and against the mean of all ${#CEILINGS[@]}:"
	for n in callrelay callrelay-status callrelay-dial; do
		# shellcheck disable=SC2086
		set -- ${BESIDE[$n]}
		c=$(mean rps "$1" "$2")
		printf '  %-22s %9s req/s  ceiling beside it %8s (%s %s, %s %s): %5s×   all ceilings: %5s×\n' "${R[$n.route]}" "${R[$n.rps]}" \
			"$c" "$1" "${R[$1.rps]}" "$2" "${R[$2.rps]}" "$(ratio "${R[$n.rps]}" "$c")" "$(ratio "${R[$n.rps]}" "${R[ceiling.rps]}")"
		echo "LOADTEST server=callrelay route=${R[$n.route]} vs_ceiling_beside=$(ratio "${R[$n.rps]}" "$c") vs_ceiling_all=$(ratio "${R[$n.rps]}" "${R[ceiling.rps]}") ceiling_beside_rps=$c"
	done
else
	echo "express, go-ceiling: SKIPPED, peers not found under $PEERS (set LOADTEST_PEERS): no ratios"
fi
echo
echo "callrelay /twilio/voice during the run (its /metrics): 200=${R[callrelay.m200]} 403=${R[callrelay.m403]} 5xx=${R[callrelay.m5]}" \
	"fallbacks(answered without the database)=${R[callrelay.fallbacks]};" \
	"since start (smoke, warm-up, run): fallbacks=${R[callrelay.fallbacks_all]} signature failures=${R[callrelay.sigfail]}"
echo "callrelay calls rows written during the run=${R[callrelay.rows]}, wrk 2xx=${R[callrelay.ok]}, lines sent=${R[callrelay.sent]}" \
	"(rows may exceed 2xx by the requests in flight when wrk stopped)"
echo
echo "callrelay per route (callrelay only: express-seed and go-ceiling have no call-status or dial-outcome equivalent)." \
	"Each route on a new callrelay process (RSS = that process's peak), the callbacks on the voice run's $N_CALLS calls:"
rfmt='%-22s %9s %8s %8s %9s %7s %8s %8s %9s %6s %8s %8s\n'
# shellcheck disable=SC2059
printf "$rfmt" route 'req/s' 'p50 ms' 'p99 ms' 'max ms' errors non-2xx 'RSS MB' 'cpu us/r' 'busy%' 2xx rows
CR_RUNS=(callrelay callrelay-status callrelay-dial)
for n in "${CR_RUNS[@]}"; do
	# shellcheck disable=SC2059
	printf "$rfmt" "${R[$n.route]}" "${R[$n.rps]}" "${R[$n.p50_ms]}" "${R[$n.p99_ms]}" "${R[$n.max_ms]}" "${R[$n.errors]}" \
		"${R[$n.non2xx]}" "${R[$n.rss]}" "${R[$n.cpu_us]}" "${R[$n.busy]}" "${R[$n.ok]}" "${R[$n.rows]}"
done
echo "rows: voice = calls; call-status = leg events (one per leg and status); dial-outcome = dial-outcome events"
for n in "${CR_RUNS[@]}"; do
	echo "callrelay ${R[$n.route]} during the run (its /metrics): 2xx=${R[$n.m2xx]} non-2xx=${R[$n.mnon2xx]} 403=${R[$n.m403]} 5xx=${R[$n.m5]}" \
		"fallbacks=${R[$n.fallbacks]}; lines sent=${R[$n.sent]}${R[$n.lines]:+ of ${R[$n.lines]}}"
done
echo "call-status effects: ${R[callrelay-status.rows2]} legs created during the run; after it, ${R[callrelay-status.answered]} calls with an answered leg (their callee)"
echo "dial-outcome effects: ${R[callrelay-dial.rows2]} calls moved to voicemail or completed during the run for ${R[callrelay-dial.ok]} 2xx;" \
	"calls by status at the end: ${R[callrelay-dial.statuses]}"
for n in "${CR_RUNS[@]}"; do
	nerr=$(grep -c '"level":"ERROR"' "$RUN/$n.log" || true)
	if [[ $nerr -gt 0 ]]; then
		echo "callrelay (${R[$n.route]} run) logged $nerr ERROR lines; the kinds (count, message, error with the CallSid cut):"
		error_kinds "$RUN/$n.log"
	fi
done
if [[ $MIXED == 1 ]]; then
	echo
	echo "whole calls, mixed (voice, 4 leg statuses, Dial action, caller's completed status; open loop, $CONNECTIONS connections," \
		"latency from when each request was due): ${R[mixed.best]} calls/s ($((R[mixed.best] * 7)) webhooks/s) with every route's p99 <= ${LOADTEST_P99_MS:-15} ms;" \
		"${R[mixed.calls]} calls written; per step and route:"
	grep '^LADDER ' "$RUN/mixed.out" | sed 's/^LADDER /  /'
	echo "LOADTEST server=callrelay route=mixed calls_s=${R[mixed.best]}"
fi
echo
echo "PostgreSQL during each measured run (the whole server): checkpoints started, WAL written, full-page images," \
	"WAL files added (its $(psql_admin "SELECT string_agg(name || '=' || current_setting(name), ' ' ORDER BY name) FROM pg_settings WHERE name IN ('min_wal_size', 'max_wal_size', 'shared_buffers')" 2>/dev/null || echo '(settings unreadable)')):"
for n in "${RUNS[@]}" callrelay-status callrelay-dial; do
	printf '  %-16s checkpoints=%s wal_mb=%s fpi=%s wal_files=%s\n' "$n" "${R[$n.checkpoints]}" "${R[$n.wal_mb]}" "${R[$n.fpi]}" "${R[$n.wal_files]}"
done
echo "columns: errors = socket errors; non-2xx = wrk's status errors (>399); cpu us/r = server process CPU per" \
	"request (Postgres excluded); busy% = whole machine (wrk and Postgres included); rows = rows written in the run"
echo "logs and wrk output: $KEPT (copied there at the end from $RUN)"
echo
for n in "${RUNS[@]}" callrelay-status callrelay-dial; do
	case $n in
	callrelay*) server=callrelay route=${R[$n.route]} ;;
	*) server=$n route=/webhook/voice ;;
	esac
	echo "LOADTEST server=$server route=$route rps=${R[$n.rps]} p50_ms=${R[$n.p50_ms]} p99_ms=${R[$n.p99_ms]}" \
		"max_ms=${R[$n.max_ms]} errors=${R[$n.errors]} non2xx=${R[$n.non2xx]} rss_mb=${R[$n.rss]} cpu_us=${R[$n.cpu_us]}" \
		"ok=${R[$n.ok]} rows=${R[$n.rows]} checkpoints=${R[$n.checkpoints]} wal_mb=${R[$n.wal_mb]} fpi=${R[$n.fpi]} wal_files=${R[$n.wal_files]}"
done

for n in "${RUNS[@]}"; do
	[[ ${R[$n.exhausted]} -eq 0 ]] ||
		FAIL+=("$n: the request file ran out (${R[$n.sent]} lines sent); raise LOADTEST_MAX_RPS (now $MAX_RPS)")
done
[[ ${R[callrelay.errors]} -eq 0 ]] || FAIL+=("callrelay: ${R[callrelay.errors]} socket errors")
[[ ${R[callrelay.non2xx]} -eq 0 ]] || FAIL+=("callrelay: ${R[callrelay.non2xx]} non-2xx responses")
[[ ${R[callrelay.m403]} -eq 0 ]] || FAIL+=("callrelay: ${R[callrelay.m403]} webhooks refused with 403 (signature)")
[[ ${R[callrelay.rows]} -ge ${R[callrelay.ok]} ]] ||
	FAIL+=("callrelay: wrote ${R[callrelay.rows]} call rows for ${R[callrelay.ok]} 2xx answers (fallbacks: ${R[callrelay.fallbacks]})")
for n in "${CR_RUNS[@]}"; do
	r=${R[$n.route]}
	[[ ${R[$n.mnon2xx]} -eq 0 ]] || FAIL+=("callrelay $r: ${R[$n.mnon2xx]} answers other than 2xx (its /metrics)")
	[[ $n == callrelay ]] && continue
	[[ ${R[$n.exhausted]} -eq 0 ]] ||
		FAIL+=("callrelay $r: the request file ran out (${R[$n.sent]} of ${R[$n.lines]} lines, one per callback of the voice run's $N_CALLS calls): callrelay answered $r much faster than /twilio/voice; a longer run does not help (both grow), tell whoever keeps scripts/loadtest.sh to top up more")
	[[ ${R[$n.errors]} -eq 0 ]] || FAIL+=("callrelay $r: ${R[$n.errors]} socket errors")
	[[ ${R[$n.non2xx]} -eq 0 ]] || FAIL+=("callrelay $r: ${R[$n.non2xx]} non-2xx responses")
	[[ ${R[$n.m403]} -eq 0 ]] || FAIL+=("callrelay $r: ${R[$n.m403]} webhooks refused with 403 (signature)")
	[[ ${R[$n.rows]} -ge ${R[$n.ok]} ]] ||
		FAIL+=("callrelay $r: wrote ${R[$n.rows]} events for ${R[$n.ok]} 2xx answers (fallbacks: ${R[$n.fallbacks]})")
done
[[ ${R[callrelay-dial.rows2]} -ge ${R[callrelay-dial.ok]} ]] ||
	FAIL+=("callrelay /twilio/dial-outcome: ${R[callrelay-dial.rows2]} calls moved to voicemail or completed for ${R[callrelay-dial.ok]} 2xx answers")
if ((${#FAIL[@]})); then
	echo
	for f in "${FAIL[@]}"; do echo "FAIL $f"; done
	exit 1
fi
echo "PASS callrelay answered every signed webhook (voice, call-status, dial-outcome) with 2xx and wrote the rows for each"
((HAVE_PEERS)) || echo "NOTE the peers (express-seed, go-ceiling) were not found under $PEERS and were skipped: callrelay measured alone"

#!/usr/bin/env bash
# loadtest.sh — load-test callrelay's voice webhook against two peers, side by side, with wrk.
#
# Usage: scripts/loadtest.sh            (or: make loadtest [DURATION=10s])
#
# One run, on this machine, one server at a time (never concurrently):
#   1. callrelay   POST /twilio/voice, signed webhooks, on a fresh database (dropped at the end)
#   2. express     the seed tutorial's Express server (peers/express-seed), POST /webhook/voice,
#                  no database, does not check signatures
#   3. ceiling     the least a stateful Go webhook can do (peers/go-ceiling, mode pg), POST
#                  /webhook/voice, on its own fresh database
# Each gets: start, readiness, one smoke request, a warm-up (WARMUP), then
# `wrk -t THREADS -c CONNECTIONS -d DURATION`. Every request carries a new CallSid: the webhooks
# are generated up front by the peer's signmany.js (Twilio's own Node library computes the
# X-Twilio-Signature, which also cross-checks callrelay's validator) and each line is sent once
# (scripts/loadtest/webhooks.lua). Afterwards: peak RSS (VmHWM) of the server process, its CPU
# time per request, and, for the two database servers, the rows written compared with the 2xx
# responses wrk counted.
#
# Prints a summary table and the ratios callrelay/express and callrelay/ceiling. Exits non-zero
# when callrelay answered anything but 2xx or had socket errors, when it wrote fewer call rows
# than it answered 2xx, or when the request file ran out (raise LOADTEST_MAX_RPS).
# Compare ratios within one run, not absolute figures across runs: the machine is shared.
#
# Environment (defaults):
#   DURATION=10s  WARMUP=3s  THREADS=2  CONNECTIONS=32     wrk parameters (same for all three)
#   LOADTEST_MAX_RPS=20000     request lines generated per second of WARMUP+DURATION
#   LOADTEST_DIR=<repo>/.data/loadtest                      scratch (builds, node_modules, logs)
#   LOADTEST_PEERS=/work/shared/peers                       where the peers are (read-only)
#   LOADTEST_TWILIO_TOKEN=loadtesttoken123                  callrelay's TWILIO_AUTH_TOKEN
#   LOADTEST_KEEP=0            1: keep the generated request files and the databases
#   PGHOST=127.0.0.1 PGPORT=5432 PGUSER=<current user>      Postgres to create the databases in
#   GO=go
# Ports: callrelay 127.0.0.1:18080, express 127.0.0.1:3111, ceiling 127.0.0.1:3113 (must be free).
# Output of the last run (server logs, wrk output) stays in $LOADTEST_DIR/run/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRATCH=${LOADTEST_DIR:-$ROOT/.data/loadtest}
PEERS=${LOADTEST_PEERS:-/work/shared/peers}
LUA=$ROOT/scripts/loadtest/webhooks.lua
RUN=$SCRATCH/run

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

log() { printf 'loadtest: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# hex N: N random bytes as hex.
hex() { od -An -v -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

# seconds D: a wrk duration (10, 10s, 2m, 1h) in whole seconds.
seconds() {
	case $1 in
	*[!0-9smh]* | "" | [smh]*) return 1 ;;
	*s) echo "${1%s}" ;;
	*m) echo $((${1%m} * 60)) ;;
	*h) echo $((${1%h} * 3600)) ;;
	*) echo "$1" ;;
	esac
}

now_ms() { date +%s%3N; }

# --- what we started, stopped and dropped on exit -------------------------------------------

PIDS=()      # server processes still running
DATABASES=() # databases we created

psql_admin() { psql -X -w -q -A -t -v ON_ERROR_STOP=1 -d postgres -c "$1"; }
psql_db() { psql -X -w -q -A -t -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }

# stop_pid PID: SIGTERM, then SIGKILL after 25 s (callrelay drains for up to 20 s).
stop_pid() {
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || {
		wait "$pid" 2>/dev/null || true
		return 0
	}
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 250; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "process $pid did not stop on SIGTERM; killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
	local keep=() p
	for p in ${PIDS[@]+"${PIDS[@]}"}; do [[ $p == "$pid" ]] || keep+=("$p"); done
	PIDS=(${keep[@]+"${keep[@]}"})
}

drop_db() {
	local db=$1 keep=() d
	if [[ $KEEP == 1 ]]; then
		log "keeping database $db (LOADTEST_KEEP=1)"
	else
		psql_admin "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 ||
			log "warning: could not drop database $db"
	fi
	for d in ${DATABASES[@]+"${DATABASES[@]}"}; do [[ $d == "$db" ]] || keep+=("$d"); done
	DATABASES=(${keep[@]+"${keep[@]}"})
}

cleanup() {
	local rc=$? p d
	trap - EXIT INT TERM
	for p in ${PIDS[@]+"${PIDS[@]}"}; do stop_pid "$p"; done
	for d in ${DATABASES[@]+"${DATABASES[@]}"}; do drop_db "$d"; done
	if [[ $KEEP != 1 ]]; then
		rm -f "$RUN"/webhooks*.tsv
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# create_db NAME: a fresh database, dropped on exit (call it in this shell, not in $(…)).
create_db() {
	DATABASES+=("$1")
	psql_admin "CREATE DATABASE \"$1\"" >/dev/null || die "cannot create database $1"
}
db_url() { printf 'postgres://%s@%s:%s/%s?sslmode=disable\n' "$PGUSER" "$PGHOST" "$PGPORT" "$1"; }

# port_free HOST PORT: nothing listens there.
port_free() { ! (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# wait_http URL PID SECONDS [WANT]: until URL answers (with status WANT if given, else any).
wait_http() {
	local url=$1 pid=$2 secs=$3 want=${4:-} code i
	for ((i = 0; i < secs * 5; i++)); do
		kill -0 "$pid" 2>/dev/null || return 1
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
		if [[ $code != 000 && (-z $want || $code == "$want") ]]; then
			return 0
		fi
		sleep 0.2
	done
	return 1
}

# cpu_ticks PID: user+system CPU time of PID in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# machine_ticks: "busy total" clock ticks of all CPUs since boot.
machine_ticks() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat; }
# vmhwm_mb PID: peak resident set size of PID in MB.
vmhwm_mb() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

# --- 1. tools, builds, peers -------------------------------------------------------------------

[[ -f $LUA ]] || die "$LUA is missing"
[[ -d $PEERS/express-seed && -d $PEERS/go-ceiling ]] || die "peers not found under $PEERS (set LOADTEST_PEERS)"
DUR_S=$(seconds "$DURATION") || die "DURATION=$DURATION: want whole seconds, e.g. 10s or 1m"
WARM_S=$(seconds "$WARMUP") || die "WARMUP=$WARMUP: want whole seconds, e.g. 3s"
((DUR_S >= 1 && DUR_S <= 600)) || die "DURATION=$DURATION: between 1s and 10m, please"
((WARM_S >= 1 && WARM_S <= 60)) || die "WARMUP=$WARMUP: between 1s and 60s, please"
((THREADS >= 1 && CONNECTIONS >= THREADS)) || die "THREADS=$THREADS CONNECTIONS=$CONNECTIONS: need CONNECTIONS >= THREADS >= 1"

for c in curl psql node npm "$GO" awk od jq; do
	command -v "$c" >/dev/null 2>&1 || die "$c not found on PATH"
done
if ! command -v wrk >/dev/null 2>&1; then
	[[ $(id -u) -eq 0 ]] || die "wrk is missing: sudo apt-get install -y wrk"
	log "installing wrk (apt-get)"
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >&2; then
		DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >&2
	fi
fi

psql_admin 'SELECT 1' >/dev/null 2>&1 ||
	die "cannot log in to Postgres at $PGHOST:$PGPORT as $PGUSER (set PGHOST, PGPORT, PGUSER)"
port_free 127.0.0.1 18080 || die "127.0.0.1:18080 is in use: another callrelay (or load test) is running"
port_free 127.0.0.1 "$EXPRESS_PORT" || die "127.0.0.1:$EXPRESS_PORT is in use"
port_free 127.0.0.1 3113 || die "127.0.0.1:3113 is in use"

mkdir -p "$SCRATCH" "$RUN"
rm -f "$RUN"/*.log "$RUN"/*.out "$RUN"/webhooks*.tsv

REV=$(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown)
log "building callrelay ($REV; the working tree as it is now)"
(cd "$ROOT" && "$GO" build -o "$SCRATCH/callrelay" ./cmd/callrelay) || die "go build ./cmd/callrelay failed"

log "building the go-ceiling peer"
rm -rf "$SCRATCH/go-ceiling"
cp -R "$PEERS/go-ceiling" "$SCRATCH/go-ceiling"
chmod -R u+w "$SCRATCH/go-ceiling"
(cd "$SCRATCH/go-ceiling" && "$GO" build -o "$SCRATCH/ceiling" .) || die "go build of the go-ceiling peer failed"

# The express peer: a scratch copy; npm install only when node_modules is missing or the peer's
# package files changed since the last install.
EXP=$SCRATCH/express-seed
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
log "generating $N signed webhooks (twilio-node $TWILIO_NODE, signmany.js) for $SIGNED_URL"
t0=$(now_ms)
(cd "$EXP" && node signmany.js "$TOKEN" "$SIGNED_URL" "$N" "$NUMBER" "$CALLER") >"$ALL" ||
	die "signmany.js failed"
GEN_MS=$(($(now_ms) - t0))
lines=$(wc -l <"$ALL")
[[ $lines -eq $N ]] || die "signmany.js wrote $lines lines, want $N"
dups=$(awk -F'CallSid=' '{ split($2, a, "&"); if (seen[a[1]]++) d++ } END { print d + 0 }' "$ALL")
[[ $dups -eq 0 ]] || die "the generated webhooks repeat $dups CallSids"
head -n 1 "$ALL" >"$RUN/webhooks.smoke.tsv"
sed -n "2,$((1 + N_WARM))p" "$ALL" >"$RUN/webhooks.warm.tsv"
tail -n "+$((2 + N_WARM))" "$ALL" >"$RUN/webhooks.main.tsv"
rm -f "$ALL"
log "generated $N lines in $((GEN_MS / 1000)).$(printf '%03d' $((GEN_MS % 1000)))s ($((N * 1000 / (GEN_MS > 0 ? GEN_MS : 1))) lines/s): 1 smoke, $N_WARM warm-up, $N_MAIN measured (enough for $MAX_RPS req/s)"

# The smoke line's signature, recomputed without Twilio's library (Node's crypto over URL +
# params sorted by name): a mismatch would mean signmany.js and Twilio's algorithm disagree.
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
INDEP_SIG=$(independent_sig "$SIGNED_URL" "$SMOKE_LINE")
if [[ $INDEP_SIG == "$SMOKE_SIG" ]]; then
	log "signature cross-check: twilio-node $TWILIO_NODE and an independent HMAC-SHA1 agree ($SMOKE_SIG)"
else
	log "warning: twilio-node signed $SMOKE_SIG, an independent HMAC-SHA1 over the same URL and params gives $INDEP_SIG"
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

# measure NAME URL PID DB: warm-up, then the measured run, with CPU, RSS and row counts.
# DB is the database whose TABLE (R[NAME.table]) gets the rows; empty for none.
measure() {
	local name=$1 url=$2 pid=$3 db=$4 table=${R[$1.table]:-} before=0 after c0 c1 m0 m1 t0 t1
	log "$name: warm-up $WARMUP"
	wrk_run "$name" "$url" "$RUN/webhooks.warm.tsv" "$WARMUP" "$RUN/$name.warmup.out"
	kill -0 "$pid" 2>/dev/null || die "$name exited during the warm-up (log: $RUN/$name.log)"
	log "$name: warm-up $(grep '^RESULT' "$RUN/$name.warmup.out" | cut -d' ' -f3-)"
	[[ ${R[$name.exhausted]} -eq 0 ]] || log "warning: $name: the warm-up used up its lines (fine, but raise LOADTEST_MAX_RPS)"
	[[ -z $db ]] || before=$(psql_db "$db" "SELECT count(*) FROM $table")
	if [[ $name == callrelay ]]; then
		curl -s --max-time 5 "$CR_URL/metrics" -o "$RUN/callrelay.metrics.before" || true
	fi
	c0=$(cpu_ticks "$pid")
	read -r m0 t0 < <(machine_ticks)
	log "$name: wrk -t$THREADS -c$CONNECTIONS -d$DURATION $url"
	wrk_run "$name" "$url" "$RUN/webhooks.main.tsv" "$DURATION" "$RUN/$name.wrk.out"
	kill -0 "$pid" 2>/dev/null || die "$name exited during the run (log: $RUN/$name.log)"
	c1=$(cpu_ticks "$pid")
	read -r m1 t1 < <(machine_ticks)
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
	else
		R[$name.rows]=-
	fi
	log "$name: $(grep '^RESULT' "$RUN/$name.wrk.out" | cut -d' ' -f3-) rss_mb=${R[$name.rss]} rows=${R[$name.rows]}"
}

# smoke NAME URL: POST the smoke line once; prints the status code, the body goes to a file.
smoke() {
	curl -s -o "$RUN/$1.smoke.body" -w '%{http_code}' --max-time 10 \
		-H 'Content-Type: application/x-www-form-urlencoded' -H "X-Twilio-Signature: $SMOKE_SIG" \
		--data-binary "$SMOKE_BODY" "$2" || echo 000
}

# metric_sum FILE REGEX: sum of the Prometheus samples whose line matches REGEX.
metric_sum() {
	[[ -f $1 ]] || {
		echo 0
		return
	}
	awk -v re="$2" '$0 !~ /^#/ && $0 ~ re { s += $NF } END { printf "%d", s }' "$1"
}

# signature_report: why callrelay refused the smoke webhook with 403.
signature_report() {
	log "callrelay answered 403 to a webhook signed by twilio-node $TWILIO_NODE:"
	log "  signed URL:        $SIGNED_URL (CALLRELAY_PUBLIC_URL=$CR_URL + /twilio/voice)"
	log "  params (sorted):   $(node -e 'const p = new URLSearchParams(process.argv[1]); console.log([...p.keys()].sort().map(k => k + "=" + p.get(k)).join(" "))' "$SMOKE_BODY")"
	log "  X-Twilio-Signature $SMOKE_SIG (twilio-node), independent HMAC-SHA1: $INDEP_SIG"
	log "  callrelay says:    $(grep -m1 'bad signature' "$RUN/callrelay.log" || echo '(nothing logged)')"
}

FAIL=()

# callrelay ------------------------------------------------------------------------------------
CR_DB=callrelay_load_$(hex 4)
log "callrelay: database $CR_DB, listening on $CR_ADDR"
create_db "$CR_DB"
CR_DBURL=$(db_url "$CR_DB")
OPS=$(hex 24)
DATABASE_URL=$CR_DBURL CALLRELAY_ADDR=$CR_ADDR CALLRELAY_PUBLIC_URL=$CR_URL TWILIO_AUTH_TOKEN=$TOKEN \
	CALLRELAY_OPS_TOKEN=$OPS CALLRELAY_MAIL_DIR=$RUN/mail SMTP_URL='' CALLRELAY_INSECURE_SKIP_SIGNATURE=false \
	"$SCRATCH/callrelay" serve >"$RUN/callrelay.log" 2>&1 &
CR_PID=$!
PIDS+=("$CR_PID")
if ! wait_http "$CR_URL/readyz" "$CR_PID" 60 200; then
	tail -n 20 "$RUN/callrelay.log" >&2
	die "callrelay did not become ready on $CR_URL/readyz (log: $RUN/callrelay.log)"
fi
code=$(curl -s -o "$RUN/callrelay.number.json" -w '%{http_code}' --max-time 10 -X PUT \
	-H "Authorization: Bearer $OPS" -H 'Content-Type: application/json' \
	"$CR_URL/api/numbers/%2B${NUMBER#+}" \
	-d "{\"owner_email\":\"dana@example.com\",\"targets\":[{\"type\":\"phone\",\"to\":\"$FORWARD\"}]}" || echo 000)
[[ $code == 2?? ]] || die "callrelay: PUT /api/numbers/$NUMBER answered $code: $(cat "$RUN/callrelay.number.json")"
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
measure callrelay "$CR_URL/twilio/voice" "$CR_PID" "$CR_DB"
curl -s --max-time 5 "$CR_URL/metrics" -o "$RUN/callrelay.metrics.after" || true
route='route="/twilio/voice"'
for kind in 200 403 5; do
	b=$(metric_sum "$RUN/callrelay.metrics.before" "^callrelay_http_requests_total.*code=\"$kind.*$route")
	a=$(metric_sum "$RUN/callrelay.metrics.after" "^callrelay_http_requests_total.*code=\"$kind.*$route")
	R[callrelay.m$kind]=$((a - b))
done
R[callrelay.fallbacks]=$(($(metric_sum "$RUN/callrelay.metrics.after" '^callrelay_webhook_fallbacks_total') -
	$(metric_sum "$RUN/callrelay.metrics.before" '^callrelay_webhook_fallbacks_total')))
R[callrelay.fallbacks_all]=$(metric_sum "$RUN/callrelay.metrics.after" '^callrelay_webhook_fallbacks_total')
R[callrelay.sigfail]=$(metric_sum "$RUN/callrelay.metrics.after" '^callrelay_twilio_signature_failures_total')
stop_pid "$CR_PID"
drop_db "$CR_DB"

# express ----------------------------------------------------------------------------------------
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

# go-ceiling -------------------------------------------------------------------------------------
CEIL_DB=callrelay_ceil_$(hex 4)
log "ceiling: database $CEIL_DB, listening on $CEIL_ADDR"
create_db "$CEIL_DB"
CEIL_DBURL=$(db_url "$CEIL_DB")
DATABASE_URL=$CEIL_DBURL "$SCRATCH/ceiling" pg "$CEIL_ADDR" >"$RUN/ceiling.log" 2>&1 &
CEIL_PID=$!
PIDS+=("$CEIL_PID")
wait_http "$CEIL_URL/" "$CEIL_PID" 30 || {
	tail -n 20 "$RUN/ceiling.log" >&2
	die "the go-ceiling peer did not start (log: $RUN/ceiling.log)"
}
code=$(smoke ceiling "$CEIL_URL/webhook/voice")
[[ $code == 200 ]] || die "ceiling: smoke webhook answered $code: $(head -c 300 "$RUN/ceiling.smoke.body")"
R[ceiling.table]=ceil_calls
measure ceiling "$CEIL_URL/webhook/voice" "$CEIL_PID" "$CEIL_DB"
stop_pid "$CEIL_PID"
drop_db "$CEIL_DB"

# --- 5. summary ----------------------------------------------------------------------------------

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }

echo
echo "callrelay load test — $(date -u +%Y-%m-%dT%H:%M:%SZ), callrelay $REV, $(nproc) cores, wrk -t$THREADS -c$CONNECTIONS -d$DURATION (warm-up $WARMUP), $N_MAIN request lines (generated in $((GEN_MS / 1000)).$(printf '%03d' $((GEN_MS % 1000)))s), load average at start $LOAD_START"
fmt='%-10s %10s %8s %8s %9s %7s %8s %8s %9s %6s %9s %9s\n'
# shellcheck disable=SC2059
printf "$fmt" name 'req/s' 'p50 ms' 'p99 ms' 'max ms' errors non-2xx 'RSS MB' 'cpu us/r' 'busy%' 2xx rows
for n in callrelay express ceiling; do
	# shellcheck disable=SC2059
	printf "$fmt" "$n" "${R[$n.rps]}" "${R[$n.p50_ms]}" "${R[$n.p99_ms]}" "${R[$n.max_ms]}" "${R[$n.errors]}" \
		"${R[$n.non2xx]}" "${R[$n.rss]}" "${R[$n.cpu_us]}" "${R[$n.busy]}" "${R[$n.ok]}" "${R[$n.rows]}"
done
echo
printf '%-20s %8s %8s %8s %8s\n' ratio 'req/s' p50 p99 RSS
for peer in express ceiling; do
	printf '%-20s %8s %8s %8s %8s\n' "callrelay/$peer" \
		"$(ratio "${R[callrelay.rps]}" "${R[$peer.rps]}")" "$(ratio "${R[callrelay.p50_ms]}" "${R[$peer.p50_ms]}")" \
		"$(ratio "${R[callrelay.p99_ms]}" "${R[$peer.p99_ms]}")" "$(ratio "${R[callrelay.rss]}" "${R[$peer.rss]}")"
done
echo
echo "callrelay /twilio/voice during the run (its /metrics): 200=${R[callrelay.m200]} 403=${R[callrelay.m403]} 5xx=${R[callrelay.m5]}" \
	"fallbacks(answered without the database)=${R[callrelay.fallbacks]};" \
	"since start (smoke, warm-up, run): fallbacks=${R[callrelay.fallbacks_all]} signature failures=${R[callrelay.sigfail]}"
echo "callrelay calls rows written during the run=${R[callrelay.rows]}, wrk 2xx=${R[callrelay.ok]}, lines sent=${R[callrelay.sent]}" \
	"(rows may exceed 2xx by the requests in flight when wrk stopped)"
nerr=$(grep -c '"level":"ERROR"' "$RUN/callrelay.log" || true)
if [[ $nerr -gt 0 ]]; then
	echo "callrelay logged $nerr ERROR lines; the kinds (count, message, error with the CallSid cut):"
	grep '"level":"ERROR"' "$RUN/callrelay.log" | jq -r '[.msg, (.error // "" | gsub("CA[0-9a-f]{32}"; "CA…"))] | join(": ")' 2>/dev/null |
		sort | uniq -c | sort -rn | head -n 5 | sed 's/^/  /'
fi
echo "columns: errors = socket errors; non-2xx = wrk's status errors (>399); cpu us/r = server process CPU per" \
	"request (Postgres excluded); busy% = whole machine (wrk and Postgres included); rows = rows written in the run"
echo "logs and wrk output: $RUN"

for n in callrelay express ceiling; do
	[[ ${R[$n.exhausted]} -eq 0 ]] ||
		FAIL+=("$n: the request file ran out (${R[$n.sent]} lines sent); raise LOADTEST_MAX_RPS (now $MAX_RPS)")
done
[[ ${R[callrelay.errors]} -eq 0 ]] || FAIL+=("callrelay: ${R[callrelay.errors]} socket errors")
[[ ${R[callrelay.non2xx]} -eq 0 ]] || FAIL+=("callrelay: ${R[callrelay.non2xx]} non-2xx responses")
[[ ${R[callrelay.m403]} -eq 0 ]] || FAIL+=("callrelay: ${R[callrelay.m403]} webhooks refused with 403 (signature)")
[[ ${R[callrelay.rows]} -ge ${R[callrelay.ok]} ]] ||
	FAIL+=("callrelay: wrote ${R[callrelay.rows]} call rows for ${R[callrelay.ok]} 2xx answers (fallbacks: ${R[callrelay.fallbacks]})")
if ((${#FAIL[@]})); then
	echo
	for f in "${FAIL[@]}"; do echo "FAIL $f"; done
	exit 1
fi
echo "PASS callrelay answered every signed webhook with 2xx and wrote a call row for each"

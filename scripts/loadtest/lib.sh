# lib.sh — helpers shared by scripts/loadtest.sh and scripts/loadtest/soak.sh (sourced, not run).
#
# The sourcing script sets LOG_NAME (the prefix of its messages) and KEEP (1: keep databases),
# exports PGHOST/PGPORT/PGUSER, and installs a trap that calls stop_everything on exit.
# Processes it starts go in PIDS, databases it creates in DATABASES: stop_everything stops and
# drops them.

log() { printf '%s: %s\n' "${LOG_NAME:-loadtest}" "$*" >&2; }
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
	if [[ ${KEEP:-0} == 1 ]]; then
		log "keeping database $db (LOADTEST_KEEP=1)"
	else
		psql_admin "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 ||
			log "warning: could not drop database $db"
	fi
	for d in ${DATABASES[@]+"${DATABASES[@]}"}; do [[ $d == "$db" ]] || keep+=("$d"); done
	DATABASES=(${keep[@]+"${keep[@]}"})
}

# stop_everything: stop every process in PIDS and drop every database in DATABASES.
stop_everything() {
	local p d
	for p in ${PIDS[@]+"${PIDS[@]}"}; do stop_pid "$p"; done
	for d in ${DATABASES[@]+"${DATABASES[@]}"}; do drop_db "$d"; done
}

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

# metric_sum FILE REGEX: sum of the Prometheus samples whose line matches REGEX.
metric_sum() {
	[[ -f $1 ]] || {
		echo 0
		return
	}
	awk -v re="$2" '$0 !~ /^#/ && $0 ~ re { s += $NF } END { printf "%d", s }' "$1"
}

# need_wrk: wrk on PATH, installed from Debian when we are root.
need_wrk() {
	command -v wrk >/dev/null 2>&1 && return 0
	[[ $(id -u) -eq 0 ]] || die "wrk is missing: sudo apt-get install -y wrk"
	log "installing wrk (apt-get)"
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >&2; then
		DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >&2
	fi
}

# start_callrelay BIN DB_URL ADDR OPS_TOKEN TWILIO_TOKEN LOG MAIL_DIR: serve in the background,
# wait for /readyz; sets CR_PID (also in PIDS). Dies with the log's tail when it does not come up.
start_callrelay() {
	local bin=$1 dburl=$2 addr=$3 ops=$4 token=$5 logfile=$6 mail=$7
	DATABASE_URL=$dburl CALLRELAY_ADDR=$addr CALLRELAY_PUBLIC_URL=http://$addr TWILIO_AUTH_TOKEN=$token \
		CALLRELAY_OPS_TOKEN=$ops CALLRELAY_MAIL_DIR=$mail SMTP_URL='' CALLRELAY_INSECURE_SKIP_SIGNATURE=false \
		"$bin" serve >"$logfile" 2>&1 &
	CR_PID=$!
	PIDS+=("$CR_PID")
	if ! wait_http "http://$addr/readyz" "$CR_PID" 60 200; then
		tail -n 20 "$logfile" >&2
		die "callrelay did not become ready on http://$addr/readyz (log: $logfile)"
	fi
}

# put_number ADDR OPS_TOKEN NUMBER FORWARD OUT: configure NUMBER to forward to the phone FORWARD
# (every other field by default: direct mode, voicemail on). LOADTEST_ROUTING_EXTRA adds routing
# fields, e.g. '"time_zone":"UTC","schedule":{…}', to measure a number with business hours or
# caller policies.
put_number() {
	local addr=$1 ops=$2 number=$3 forward=$4 out=$5 code
	code=$(curl -s -o "$out" -w '%{http_code}' --max-time 10 -X PUT \
		-H "Authorization: Bearer $ops" -H 'Content-Type: application/json' \
		"http://$addr/api/numbers/%2B${number#+}" \
		-d "{\"owner_email\":\"dana@example.com\",\"targets\":[{\"type\":\"phone\",\"to\":\"$forward\"}]${LOADTEST_ROUTING_EXTRA:+,$LOADTEST_ROUTING_EXTRA}}" || echo 000)
	[[ $code == 2?? ]] || die "callrelay: PUT /api/numbers/$number answered $code: $(cat "$out")"
}

# error_kinds LOG: callrelay's ERROR lines, counted by message and error (CallSids cut).
error_kinds() {
	grep '"level":"ERROR"' "$1" | jq -r '[.msg, (.error // "" | gsub("CA[0-9a-f]{32}"; "CA…"))] | join(": ")' 2>/dev/null |
		sort | uniq -c | sort -rn | head -n 5 | sed 's/^/  /'
}

#!/usr/bin/env bash
# demo.sh — `make demo`: a whole call with no Twilio account. Starts callrelay with `make run`'s
# defaults (the dev Postgres, .data/dev.env secrets, mail as .eml files in .data/mail) and its
# Twilio REST API pointed at callsim, plays a no-answer call that leaves a transcribed
# voicemail, prints the timeline and the email (decoded), and stops everything it started, also
# on Ctrl-C or a SIGTERM.
#
# When something fails, the message names what failed: callrelay (its exit status and the last
# lines of .data/demo-callrelay.log), callsim (its exit status and the last lines of
# .data/demo-callsim.log), or, when the call ran, the email that did not come.
#
# Environment: GO (default go), DEMO_SPEED (default 4), DEMO_API_ADDR (default 127.0.0.1:4010),
# DEMO_SCENARIO (default testdata/scenarios/voicemail-transcribed.yaml), CALLRELAY_ADDR (default
# :8080), CALLRELAY_PUBLIC_URL (default http://localhost:<port of CALLRELAY_ADDR>).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
GO=${GO:-go}
SPEED=${DEMO_SPEED:-4}
API_ADDR=${DEMO_API_ADDR:-127.0.0.1:4010}
SCENARIO=${DEMO_SCENARIO:-testdata/scenarios/voicemail-transcribed.yaml}
export CALLRELAY_ADDR=${CALLRELAY_ADDR:-:8080}
port=${CALLRELAY_ADDR##*:}
export CALLRELAY_PUBLIC_URL=${CALLRELAY_PUBLIC_URL:-http://localhost:$port}
RELAY_LOG=.data/demo-callrelay.log
SIM_LOG=.data/demo-callsim.log
log() { printf 'demo: %s\n' "$*" >&2; }

# failed WHAT STATUS LOGFILE: say that WHAT failed with STATUS and show the end of its log.
failed() {
	log "$1 failed (exit status $2); the last lines of $3:"
	tail -n 15 "$3" | sed 's/^/  | /' >&2
}

relay_pid="" sim_pid="" marker=""
private_db_was_running=false
if scripts/devdb.sh status >/dev/null 2>&1; then private_db_was_running=true; fi
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	local pid
	for pid in $sim_pid $relay_pid; do
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	[[ -z $marker ]] || rm -f "$marker"
	if ! $private_db_was_running && scripts/devdb.sh status >/dev/null 2>&1; then
		log "stopping the private Postgres the demo started"
		scripts/devdb.sh stop || true
	fi
}
trap cleanup EXIT
# A signal ends the demo through the EXIT trap, which stops callrelay and callsim.
trap 'log "interrupted: stopping what the demo started"; exit 130' INT
trap 'log "terminated: stopping what the demo started"; exit 143' TERM

mkdir -p .data/bin
log "building callrelay, callsim and mailprint"
"$GO" build -o .data/bin/callrelay ./cmd/callrelay
"$GO" build -o .data/bin/callsim ./cmd/callsim
"$GO" build -o .data/bin/mailprint ./scripts/demo/mailprint

DATABASE_URL=$(scripts/devdb.sh)
export DATABASE_URL
eval "$(scripts/devenv.sh env)"
export CALLRELAY_MAIL_DIR=${CALLRELAY_MAIL_DIR:-.data/mail}
export TWILIO_API_URL=http://$API_ADDR
# The call's outcome (voicemail, missed) is decided this long after it ends; callsim checks it,
# so the demo does not wait the production default of 2 minutes.
export CALLRELAY_MISSED_CALL_DELAY=${CALLRELAY_MISSED_CALL_DELAY:-5s}
unset SMTP_URL
mkdir -p "$CALLRELAY_MAIL_DIR"
marker=$(mktemp)

if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
	log "something already listens on port $port (a 'make run'?): stop it, or set CALLRELAY_ADDR (e.g. CALLRELAY_ADDR=:8090 make demo)"
	exit 1
fi
log "starting callrelay on $CALLRELAY_ADDR (log: $RELAY_LOG), Twilio REST API → callsim at $TWILIO_API_URL"
.data/bin/callrelay serve >"$RELAY_LOG" 2>&1 &
relay_pid=$!

# relay_exited: true when callrelay is no longer running; its status is then in relay_status.
relay_status=""
relay_exited() {
	[[ -n $relay_pid ]] || return 0
	kill -0 "$relay_pid" 2>/dev/null && return 1
	relay_status=0
	wait "$relay_pid" || relay_status=$?
	relay_pid=""
}

# ready: callrelay's /readyz answers 200 (database reachable, migrations applied).
# A subshell: a failed exec redirection must not end the script.
ready() (
	exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
	printf 'GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
	read -r -t 2 line <&3 || exit 1
	[[ $line == HTTP/1.?" 200 "* ]]
)

deadline=$((SECONDS + 60))
until ready 2>/dev/null; do
	if relay_exited; then
		failed "callrelay" "$relay_status" "$RELAY_LOG"
		exit 1
	fi
	if ((SECONDS >= deadline)); then
		log "callrelay did not become ready on port $port within 60 s (database unreachable? migrations?); the last lines of $RELAY_LOG:"
		tail -n 15 "$RELAY_LOG" | sed 's/^/  | /' >&2
		exit 1
	fi
	sleep 0.2
done

log "playing $SCENARIO at ${SPEED}x (callsim's log: $SIM_LOG)"
# In the background, so that a signal interrupts the wait at once.
.data/bin/callsim -listen "$API_ADDR" -speed "$SPEED" "$SCENARIO" > >(tee "$SIM_LOG") 2>&1 &
sim_pid=$!
sim_status=0
wait "$sim_pid" || sim_status=$?
sim_pid=""

# The cause first: callrelay gone, then callsim failing, and only then the email.
if relay_exited; then
	failed "callrelay" "$relay_status" "$RELAY_LOG"
	exit 1
fi
case $sim_status in
0) ;;
1) log "the call ran but did not go as $SCENARIO expects (callsim exit status 1; see the FAIL lines above)" ;;
*)
	failed "callsim" "$sim_status" "$SIM_LOG"
	exit 1
	;;
esac

shopt -s nullglob
emails=()
for f in "$CALLRELAY_MAIL_DIR"/*.eml; do
	[[ $f -nt $marker ]] && emails+=("$f")
done
if ((${#emails[@]} == 0)); then
	log "the call ran, but no new email arrived in $CALLRELAY_MAIL_DIR; the last lines of $RELAY_LOG:"
	tail -n 15 "$RELAY_LOG" | sed 's/^/  | /' >&2
	exit 1
fi
for f in "${emails[@]}"; do
	echo
	echo "== the owner's email: $f"
	.data/bin/mailprint "$f"
done
exit "$sim_status"

#!/usr/bin/env bash
# demo.sh — `make demo`: a whole call with no Twilio account. Starts callrelay with `make run`'s
# defaults (the dev Postgres, .data/dev.env secrets, mail as .eml files in .data/mail) and its
# Twilio REST API pointed at callsim, plays a no-answer call that leaves a transcribed
# voicemail, prints the timeline and the email, and stops everything it started.
#
# Environment: GO (default go), DEMO_SPEED (default 4), DEMO_API_ADDR (default 127.0.0.1:4010),
# DEMO_SCENARIO (default testdata/scenarios/voicemail-transcribed.yaml), CALLRELAY_ADDR (default :8080).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
GO=${GO:-go}
SPEED=${DEMO_SPEED:-4}
API_ADDR=${DEMO_API_ADDR:-127.0.0.1:4010}
SCENARIO=${DEMO_SCENARIO:-testdata/scenarios/voicemail-transcribed.yaml}
export CALLRELAY_ADDR=${CALLRELAY_ADDR:-:8080}
log() { printf 'demo: %s\n' "$*" >&2; }

pids=()
private_db_was_running=false
if scripts/devdb.sh status >/dev/null 2>&1; then private_db_was_running=true; fi
cleanup() {
	local pid
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if ! $private_db_was_running && scripts/devdb.sh status >/dev/null 2>&1; then
		log "stopping the private Postgres the demo started"
		scripts/devdb.sh stop || true
	fi
}
trap cleanup EXIT

mkdir -p .data/bin
log "building callrelay and callsim"
"$GO" build -o .data/bin/callrelay ./cmd/callrelay
"$GO" build -o .data/bin/callsim ./cmd/callsim

DATABASE_URL=$(scripts/devdb.sh)
export DATABASE_URL
eval "$(scripts/devenv.sh env)"
export CALLRELAY_MAIL_DIR=${CALLRELAY_MAIL_DIR:-.data/mail}
export TWILIO_API_URL=http://$API_ADDR
unset SMTP_URL
mkdir -p "$CALLRELAY_MAIL_DIR"
marker=$(mktemp)
trap 'rm -f "$marker"; cleanup' EXIT

port=${CALLRELAY_ADDR##*:}
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
	log "something already listens on port $port (a 'make run'?): stop it, or set CALLRELAY_ADDR and CALLRELAY_PUBLIC_URL"
	exit 1
fi
log "starting callrelay on $CALLRELAY_ADDR (log: .data/demo-callrelay.log), Twilio REST API → callsim at $TWILIO_API_URL"
.data/bin/callrelay serve >.data/demo-callrelay.log 2>&1 &
pids+=($!)

log "playing $SCENARIO at ${SPEED}x"
status=0
.data/bin/callsim -listen "$API_ADDR" -speed "$SPEED" "$SCENARIO" || status=$?

shopt -s nullglob
emails=()
for f in "$CALLRELAY_MAIL_DIR"/*.eml; do
	[[ $f -nt $marker ]] && emails+=("$f")
done
if ((${#emails[@]} == 0)); then
	log "no new email in $CALLRELAY_MAIL_DIR"
	exit 1
fi
for f in "${emails[@]}"; do
	echo
	echo "== the owner's email: $f"
	# Headers and the plain-text part; the audio attachment is base64, named here.
	awk '/^Content-Type: text\/html/ {exit} {print}' "$f" | grep -v '^[A-Za-z0-9+/=]\{60,\}$' | head -n 60
	grep -o 'filename="[^"]*"' "$f" | sed 's/^/attachment: /' || true
done
exit "$status"

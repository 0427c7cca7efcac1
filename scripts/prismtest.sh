#!/usr/bin/env bash
# Runs the conference flow's REST requests against Stoplight Prism serving Twilio's OpenAPI
# spec (../shared/reference/twilio-openapi), a strict offline mock: it answers 422 for whatever
# the spec forbids. Needs npx (Node) and the npm registry the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
SPEC="${TWILIO_OPENAPI:-../shared/reference/twilio-openapi/twilio_api_v2010.json}"
PORT="${PRISM_PORT:-4010}"
GO="${GO:-go}"
LOG="$(mktemp)"
npx --yes @stoplight/prism-cli@5 mock -h 127.0.0.1 -p "$PORT" "$SPEC" >"$LOG" 2>&1 &
PRISM=$!
trap 'kill $PRISM 2>/dev/null || true; rm -f "$LOG"' EXIT
for _ in $(seq 1 120); do
	grep -q "Prism is listening" "$LOG" && break
	kill -0 $PRISM 2>/dev/null || { cat "$LOG"; exit 1; }
	sleep 1
done
grep -q "Prism is listening" "$LOG" || { echo "prism did not start"; cat "$LOG"; exit 1; }
TWILIO_PRISM_URL="http://127.0.0.1:$PORT" "$GO" test -count=1 -run 'TestConference_Prism' -v ./internal/server/
echo "--- Prism's verdicts on callrelay's requests:"
grep -A1 "Request received" "$LOG" | grep -E "Request received|VALIDATOR" | grep -E "/Accounts/AC0123456789abcdef0123456789abcdef|VALIDATOR" | sed -E 's/^\[[^]]*\] › //'
! grep -q "VALIDATOR\] ✖" "$LOG"

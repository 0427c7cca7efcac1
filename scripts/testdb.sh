#!/usr/bin/env bash
# testdb.sh — make sure the Postgres the tests use answers on 127.0.0.1:5432.
#
# Tests read TEST_DATABASE_URL (default postgres://127.0.0.1:5432/postgres?sslmode=disable). When
# it is set to something else, this script does nothing. When 127.0.0.1:5432 does not answer and
# the machine has Debian's pg_ctlcluster, the system cluster is started and waited for
# (TESTDB_WAIT seconds, default 30). Without pg_ctlcluster it only warns (it fails under CI=true).
set -euo pipefail

WAIT=${TESTDB_WAIT:-30}
log() { printf 'testdb: %s\n' "$*" >&2; }

if [[ -n ${TEST_DATABASE_URL:-} && $TEST_DATABASE_URL != *127.0.0.1:5432* && $TEST_DATABASE_URL != *localhost:5432* ]]; then
	log "TEST_DATABASE_URL is set; leaving Postgres alone"
	exit 0
fi

isready=$(command -v pg_isready || true)
if [[ -z $isready ]]; then
	for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -rV); do
		if [[ -x $d/pg_isready ]]; then
			isready=$d/pg_isready
			break
		fi
	done
fi
if [[ -z $isready ]]; then
	log "pg_isready not found; not checking Postgres"
	exit 0
fi

up() { "$isready" -q -h 127.0.0.1 -p 5432 -t 2 >/dev/null 2>&1; }

if up; then
	log "Postgres answers on 127.0.0.1:5432"
	exit 0
fi

if ! command -v pg_ctlcluster >/dev/null 2>&1 || [[ ! -d /etc/postgresql ]]; then
	if [[ ${CI:-} == true ]]; then
		log "error: no Postgres on 127.0.0.1:5432 and no pg_ctlcluster to start one"
		exit 1
	fi
	log "warning: no Postgres on 127.0.0.1:5432 (set TEST_DATABASE_URL or start one); database tests may fail or skip"
	exit 0
fi

for conf in /etc/postgresql/*/main; do
	[[ -d $conf ]] || continue
	version=${conf#/etc/postgresql/}
	version=${version%/main}
	log "starting the system cluster: pg_ctlcluster --skip-systemctl-redirect $version main start"
	pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 ||
		log "pg_ctlcluster $version main start exited $? (already running?)"
done

for ((i = 0; i < WAIT; i++)); do
	if up; then
		log "Postgres answers on 127.0.0.1:5432"
		exit 0
	fi
	sleep 1
done
log "error: Postgres still does not answer on 127.0.0.1:5432 after ${WAIT}s (see /var/log/postgresql/)"
exit 1

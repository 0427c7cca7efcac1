#!/usr/bin/env bash
# devdb.sh — find or start a Postgres for local development and print its URL.
#
# Usage:
#   scripts/devdb.sh          print a DATABASE_URL (one line on stdout), starting Postgres if needed
#   scripts/devdb.sh stop     stop the private cluster under .data/pg, if it runs
#   scripts/devdb.sh status   tell whether the private cluster runs (exit 0 when it does)
#   scripts/devdb.sh drop     drop the database this script created on the shared Postgres (b.
#                             below), if it did; a database it found there is left alone
#
# Where the URL comes from, first match wins:
#   a. DATABASE_URL is set: it is printed unchanged.
#   b. A Postgres answers on 127.0.0.1:5432 and we can log in (as the current OS user, then as
#      "postgres"): database "callrelay" is created there if missing, and then remembered in
#      .data/devdb-created, so that `make distclean` (scripts/devdb.sh drop) drops it again.
#   c. Otherwise a private cluster is created (once) under .data/pg and started, listening on
#      127.0.0.1:${PGPORT_DEV:-5499} with trust auth; database "callrelay" is created in it.
#      As root, the cluster runs as the "postgres" system user (or a "callrelay" system user,
#      created on demand), because initdb and postgres refuse to run as root.
#
# Environment: DATABASE_URL, PGPORT_DEV (default 5499), PGDATA_DEV (default <repo>/.data/pg),
# DEVDB_NAME (default callrelay; lowercase letters, digits and _).
# Progress goes to stderr; stdout carries the URL only.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_ROOT=${PGDATA_DEV:-$ROOT/.data/pg}
PG_DATA=$PG_ROOT/data
PG_LOG=$PG_ROOT/postgres.log
PORT=${PGPORT_DEV:-5499}
DB=${DEVDB_NAME:-callrelay}
# CREATED_MARK records a database created on the shared Postgres: "PORT USER DB".
CREATED_MARK=$ROOT/.data/devdb-created
SUPERUSER=postgres # superuser role of the private cluster

log() { printf 'devdb: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# versioned_bins: /usr/lib/postgresql/*/bin, newest version first.
versioned_bins() { printf '%s\n' /usr/lib/postgresql/*/bin | sort -rV; }

# bindir [VERSION]: the directory holding initdb, pg_ctl and postgres. With a VERSION (an
# existing cluster's PG_VERSION) that version's binaries are preferred.
bindir() {
	local want=${1:-} d p
	if [[ -n $want && -x /usr/lib/postgresql/$want/bin/postgres ]]; then
		echo "/usr/lib/postgresql/$want/bin"
		return
	fi
	if p=$(command -v initdb 2>/dev/null); then
		d=$(dirname "$(readlink -f "$p")")
		if [[ -x $d/pg_ctl && -x $d/postgres ]]; then
			echo "$d"
			return
		fi
	fi
	for d in $(versioned_bins); do
		if [[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]]; then
			echo "$d"
			return
		fi
	done
	return 1
}

# client NAME: a client program (psql, pg_isready) from PATH or the server's bin directory.
client() {
	local d
	if command -v "$1" >/dev/null 2>&1; then
		command -v "$1"
		return
	fi
	if d=$(bindir) && [[ -x $d/$1 ]]; then
		echo "$d/$1"
		return
	fi
	for d in $(versioned_bins); do
		if [[ -x $d/$1 ]]; then
			echo "$d/$1"
			return
		fi
	done
	return 1
}

[[ $DB =~ ^[a-z_][a-z0-9_]*$ ]] || die "DEVDB_NAME=$DB: use lowercase letters, digits and _"

PSQL=$(client psql || true)
PG_ISREADY=$(client pg_isready || true)

# psql_at PORT USER SQL: run one statement on database postgres at 127.0.0.1:PORT, never prompting.
psql_at() {
	PGCONNECT_TIMEOUT=5 "$PSQL" -X -w -q -A -t -v ON_ERROR_STOP=1 \
		-h 127.0.0.1 -p "$1" -U "$2" -d postgres -c "$3"
}

# ensure_db PORT USER: create database $DB if missing (fails when USER may not). CREATED tells
# whether it did.
CREATED=false
ensure_db() {
	local have
	have=$(psql_at "$1" "$2" "SELECT 1 FROM pg_database WHERE datname = '$DB'") || return 1
	if [[ $have != 1 ]]; then
		log "creating database $DB on 127.0.0.1:$1 as $2"
		psql_at "$1" "$2" "CREATE DATABASE $DB" >&2 || return 1
		CREATED=true
	fi
}

# drop_created: drop the database recorded in CREATED_MARK (one this script created on the
# shared Postgres), then forget it. The private cluster's database goes with .data/pg.
drop_created() {
	local port user db
	if [[ ! -f $CREATED_MARK ]]; then
		log "no database to drop on a shared Postgres: this checkout's devdb.sh created none (one it found there is not its to drop)"
		return 0
	fi
	read -r port user db <"$CREATED_MARK" || true
	[[ $port =~ ^[0-9]+$ && -n $user && $db =~ ^[a-z_][a-z0-9_]*$ ]] || die "$CREATED_MARK: unreadable (want: PORT USER DB); delete it by hand"
	[[ -n $PSQL ]] || die "psql not found: cannot drop database $db on 127.0.0.1:$port"
	log "dropping database $db on 127.0.0.1:$port as $user (devdb.sh created it)"
	if ! psql_at "$port" "$user" "DROP DATABASE IF EXISTS $db" >&2; then
		die "could not drop database $db on 127.0.0.1:$port (server down, or still in use: stop 'make run'); $CREATED_MARK is kept: run 'make distclean' again"
	fi
	rm -f "$CREATED_MARK"
}

url() { printf 'postgres://%s@127.0.0.1:%s/%s?sslmode=disable\n' "$1" "$2" "$DB"; }

ready() {
	if [[ -n $PG_ISREADY ]]; then
		"$PG_ISREADY" -q -h 127.0.0.1 -p "$1" -t 2 >/dev/null 2>&1
	else
		psql_at "$1" "$SUPERUSER" 'SELECT 1' >/dev/null 2>&1
	fi
}

# --- who runs the private cluster ---------------------------------------------------------

RUN_AS="" # empty: the current user
pick_run_user() {
	[[ $(id -u) -eq 0 ]] || return 0
	if [[ -e $PG_DATA ]]; then
		# An existing cluster keeps its owner.
		RUN_AS=$(stat -c %U "$PG_DATA")
		[[ $RUN_AS != root && $RUN_AS != UNKNOWN ]] && return 0
	fi
	if id -u postgres >/dev/null 2>&1; then
		RUN_AS=postgres
	else
		if ! id -u callrelay >/dev/null 2>&1; then
			log "creating system user callrelay to run the private cluster (Postgres refuses root)"
			if command -v useradd >/dev/null 2>&1; then
				useradd -r -U -M -d /nonexistent -s /usr/sbin/nologin callrelay >&2
			else
				adduser -S -D -H -h /nonexistent -s /sbin/nologin callrelay >&2
			fi
		fi
		RUN_AS=callrelay
	fi
}

# as_owner CMD...: run CMD as the cluster's owner, from a directory that user can enter.
as_owner() {
	if [[ -z $RUN_AS ]]; then
		(cd "$PG_ROOT" && "$@")
	elif command -v runuser >/dev/null 2>&1; then
		(cd "$PG_ROOT" && runuser -u "$RUN_AS" -- "$@")
	else
		local q
		printf -v q '%q ' "$@"
		(cd "$PG_ROOT" && su -s /bin/sh "$RUN_AS" -c "$q")
	fi
}

# socket_dir: inside .data/pg when the path fits a Unix socket name (107 bytes), else /tmp.
socket_dir() {
	local d=$PG_ROOT/run
	if ((${#d} + 20 < 100)); then echo "$d"; else echo /tmp; fi
}

running() {
	[[ -f $PG_DATA/PG_VERSION ]] || return 1
	local bin
	bin=$(bindir "$(cat "$PG_DATA/PG_VERSION")") || return 1
	as_owner "$bin/pg_ctl" status -D "$PG_DATA" >/dev/null 2>&1
}

# --- private cluster -----------------------------------------------------------------------

start_private() {
	local bin sock
	[[ -n $PSQL ]] || die "psql not found (PATH or /usr/lib/postgresql/*/bin); install postgresql-client or set DATABASE_URL"
	pick_run_user
	mkdir -p "$PG_ROOT"
	sock=$(socket_dir)
	[[ $sock == /tmp ]] || mkdir -p "$sock"
	if [[ -n $RUN_AS ]]; then
		# The cluster's owner must own everything under .data/pg (data, socket dir, log).
		if [[ $(stat -c %U "$PG_ROOT") != "$RUN_AS" || ($sock != /tmp && $(stat -c %U "$sock") != "$RUN_AS") ]]; then
			chown -R "$RUN_AS:" "$PG_ROOT"
		fi
		if ! as_owner test -w "$PG_ROOT"; then
			die "user $RUN_AS cannot write $PG_ROOT (a parent directory is closed to it?); chmod o+x the parents, set PGDATA_DEV=/var/tmp/callrelay-pg, or set DATABASE_URL"
		fi
	fi
	chmod 700 "$PG_ROOT"

	if [[ ! -f $PG_DATA/PG_VERSION ]]; then
		bin=$(bindir) || die "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH or in /usr/lib/postgresql/*/bin; install postgresql or set DATABASE_URL"
		log "creating a private cluster in $PG_DATA with $bin/initdb${RUN_AS:+ (as $RUN_AS)}"
		as_owner "$bin/initdb" -D "$PG_DATA" -U "$SUPERUSER" --auth=trust \
			--encoding=UTF8 --locale=C >>"$PG_ROOT/initdb.log" 2>&1 ||
			{ tail -n 20 "$PG_ROOT/initdb.log" >&2; die "initdb failed (log: $PG_ROOT/initdb.log)"; }
	fi
	bin=$(bindir "$(cat "$PG_DATA/PG_VERSION")") ||
		die "no PostgreSQL $(cat "$PG_DATA/PG_VERSION") binaries for the cluster in $PG_DATA"

	if running; then
		log "private cluster already running ($PG_DATA)"
	else
		log "starting the private cluster on 127.0.0.1:$PORT (log: $PG_LOG)"
		if ! as_owner "$bin/pg_ctl" start -D "$PG_DATA" -l "$PG_LOG" -w -t 60 \
			-o "-c listen_addresses=127.0.0.1 -p $PORT -k $sock" >&2; then
			tail -n 20 "$PG_LOG" >&2 || true
			die "could not start the private cluster (port $PORT taken? set PGPORT_DEV)"
		fi
	fi
	for _ in $(seq 1 30); do
		ready "$PORT" && break
		sleep 1
	done
	ensure_db "$PORT" "$SUPERUSER" ||
		die "private cluster does not answer on 127.0.0.1:$PORT (running on another port? stop it with: $0 stop)"
	url "$SUPERUSER" "$PORT"
}

stop_private() {
	local bin
	if [[ ! -f $PG_DATA/PG_VERSION ]]; then
		log "no private cluster in $PG_DATA"
		return 0
	fi
	pick_run_user
	if ! running; then
		log "private cluster not running"
		return 0
	fi
	bin=$(bindir "$(cat "$PG_DATA/PG_VERSION")")
	log "stopping the private cluster ($PG_DATA)"
	as_owner "$bin/pg_ctl" stop -D "$PG_DATA" -m fast -w >&2
}

# --- main ------------------------------------------------------------------------------------

case ${1:-start} in
start | url) ;;
stop)
	stop_private
	exit 0
	;;
drop)
	drop_created
	exit 0
	;;
status)
	pick_run_user
	if running; then
		log "private cluster running ($PG_DATA)"
		exit 0
	fi
	log "private cluster not running"
	exit 3
	;;
-h | --help | help)
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	exit 0
	;;
*) die "unknown command '$1' (start, stop, status, drop)" ;;
esac

# a. an explicit DATABASE_URL wins.
if [[ -n ${DATABASE_URL:-} ]]; then
	log "using DATABASE_URL from the environment"
	printf '%s\n' "$DATABASE_URL"
	exit 0
fi

# b. a Postgres on 127.0.0.1:5432 we can log in to.
if [[ -n $PSQL ]] && ready 5432; then
	me=$(id -un)
	for u in "$me" postgres; do
		if psql_at 5432 "$u" 'SELECT 1' >/dev/null 2>&1; then
			if ensure_db 5432 "$u"; then
				if $CREATED; then
					mkdir -p "$(dirname "$CREATED_MARK")"
					echo "5432 $u $DB" >"$CREATED_MARK"
				fi
				log "using the Postgres on 127.0.0.1:5432 as $u"
				url "$u" 5432
				exit 0
			fi
			log "connected to 127.0.0.1:5432 as $u but could not create database $DB"
		fi
		[[ $me == postgres ]] && break
	done
	log "a Postgres answers on 127.0.0.1:5432 but will not let us in; using a private cluster"
fi

# c. the private cluster.
start_private

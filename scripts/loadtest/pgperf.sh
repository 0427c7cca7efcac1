#!/usr/bin/env bash
# pgperf.sh — a private PostgreSQL cluster for profiling callrelay, with pg_stat_statements and
# auto_explain preloaded, and the measurements made on it (issue 21, docs/performance.md).
#
# The shared PostgreSQL at :5432 serves everybody's tests: it is never restarted or reconfigured.
# This cluster is our own, on another port, in a scratch directory outside the repository.
#
# Usage: scripts/loadtest/pgperf.sh COMMAND
#   start       initdb (once) and start the cluster; prints its admin URL
#   stop        stop it (the data stays; `start` again reuses it)
#   destroy     stop it and delete its directory
#   url [DB]    the URL of database DB (default postgres)
#   psql [ARGS] psql on the cluster
#   profile     the per-request profile of the three hot webhooks, before/after a change:
#               the handler benchmarks (webhook_bench_test.go) and the store benchmarks
#               (store_bench_test.go) run one at a time against this cluster, each for
#               PROFILE_N requests (-benchtime Nx), and for each: Go allocations (-benchmem),
#               round trips and statements per request (the benchmarks count them with a pgx
#               tracer), CPU of the test process and of PostgreSQL's backends per request
#               (/proc), pg_stat_statements (calls, mean time, rows per statement, per
#               request), and `go tool pprof -top` of a CPU profile. Output: $PERF_DIR/profile/.
#
# Environment (defaults):
#   PERF_DIR=/tmp/callrelay-perf    the cluster (pg/), its log, and the profile output
#   PERF_PORT=55432                 the cluster's port (127.0.0.1)
#   PERF_SHARED_BUFFERS=512MB       shared_buffers
#   PROFILE_N=4000                  requests per benchmark (profile)
#   PROFILE_BENCH=                  a regexp narrowing the benchmarks (profile), e.g. DialOutcome
#   GO=go
# As root, the cluster runs as the postgres system user (initdb and postgres refuse root).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PERF_DIR=${PERF_DIR:-/tmp/callrelay-perf}
PERF_PORT=${PERF_PORT:-55432}
PG=$PERF_DIR/pg
LOGFILE=$PERF_DIR/postgres.log
GO=${GO:-go}
export PATH=$PATH:/usr/local/go/bin

LOG_NAME=pgperf
# shellcheck source=lib.sh
. "$ROOT/scripts/loadtest/lib.sh"

case $PERF_DIR in "$ROOT" | "$ROOT"/*) die "PERF_DIR=$PERF_DIR is inside the repository: pick a scratch directory outside it" ;; esac

BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[[ -n $BIN && -x $BIN/initdb ]] || die "no PostgreSQL server programs under /usr/lib/postgresql/*/bin"

# as_owner CMD...: run a server program as the cluster's owner.
as_owner() {
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

url() { printf 'postgres://postgres@127.0.0.1:%s/%s?sslmode=disable\n' "$PERF_PORT" "${1:-postgres}"; }
pq() { psql -X -w -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PERF_PORT" -U postgres "$@"; }

running() { [[ -f $PG/postmaster.pid ]] && as_owner "$BIN/pg_ctl" -D "$PG" status >/dev/null 2>&1; }

start() {
	mkdir -p "$PERF_DIR"
	[[ $(id -u) -eq 0 ]] && chown postgres: "$PERF_DIR"
	if [[ ! -f $PG/PG_VERSION ]]; then
		log "initdb in $PG"
		as_owner "$BIN/initdb" -D "$PG" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
		# The settings that differ from the defaults: the two extensions, and enough memory for
		# the 10^7-call tables (docs/performance.md). Otherwise as shipped (fsync on): commits cost
		# what they cost on the shared server.
		cat >>"$PG/postgresql.conf" <<-EOF
			# pgperf.sh
			listen_addresses = '127.0.0.1'
			port = $PERF_PORT
			unix_socket_directories = '$PERF_DIR'
			shared_preload_libraries = 'pg_stat_statements, auto_explain'
			pg_stat_statements.track = all
			pg_stat_statements.max = 10000
			track_io_timing = on
			shared_buffers = ${PERF_SHARED_BUFFERS:-512MB}
			max_connections = 200
			max_wal_size = 2GB
			maintenance_work_mem = 512MB
			logging_collector = off
		EOF
	fi
	if running; then
		log "already running on 127.0.0.1:$PERF_PORT"
	else
		as_owner "$BIN/pg_ctl" -D "$PG" -l "$LOGFILE" -w -t 60 start >/dev/null || {
			tail -n 20 "$LOGFILE" >&2
			die "the cluster did not start (log: $LOGFILE)"
		}
		log "started on 127.0.0.1:$PERF_PORT (log: $LOGFILE)"
	fi
	# The view, in the postgres database: it shows every database's statements.
	pq -d postgres -c 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements' >/dev/null
	url postgres
}

stop() {
	if running; then
		as_owner "$BIN/pg_ctl" -D "$PG" -m fast -w stop >/dev/null
		log "stopped"
	fi
}

# backend_ticks: user+system CPU ticks of the whole cluster so far: the postmaster's own and
# its exited children's (cutime, cstime: backends that have ended), plus its live children's
# (backends, checkpointer, walwriter, autovacuum).
backend_ticks() {
	local pm
	pm=$(head -n 1 "$PG/postmaster.pid")
	{
		awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pm/stat"
		for p in $(pgrep -P "$pm" || true); do
			[[ -r /proc/$p/stat ]] && awk '{ print $14 + $15 }' "/proc/$p/stat"
		done
	} | awk '{ s += $1 } END { print s + 0 }'
}

# The benchmarks profile measures: package, benchmark regexp (anchored by go test's
# sub-benchmark syntax), and a short name. The serial ones send one request at a time (no
# sharing: the cost of one request); the parallel ones 32 at once, as the load test does.
BENCHES=(
	"./internal/server BenchmarkVoiceWebhook/serial$ voice-serial"
	"./internal/server BenchmarkVoiceWebhook/parallel$ voice-parallel"
	"./internal/server BenchmarkCallStatusWebhook$ call-status"
	"./internal/server BenchmarkDialOutcomeWebhook$ dial-outcome"
	"./internal/server BenchmarkCallbacksParallel/call-status$ call-status-parallel"
	"./internal/server BenchmarkCallbacksParallel/dial-outcome$ dial-outcome-parallel"
	"./internal/postgres BenchmarkStartCall/serial$ store-startcall"
	"./internal/postgres BenchmarkRecordLegProgress$ store-legprogress"
	"./internal/postgres BenchmarkRecordDialOutcome$ store-dialoutcome"
)

profile() {
	running || start >/dev/null
	local n=${PROFILE_N:-4000} out=$PERF_DIR/profile line pkg bench name t0 t1 c0 c1 hz
	mkdir -p "$out"
	hz=$(getconf CLK_TCK)
	local rev
	rev=$(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown)
	log "profile of $rev: $n requests per benchmark, on 127.0.0.1:$PERF_PORT; output in $out"
	export TEST_DATABASE_URL
	TEST_DATABASE_URL=$(url postgres)
	for line in "${BENCHES[@]}"; do
		read -r pkg bench name <<<"$line"
		[[ -z ${PROFILE_BENCH:-} || $name =~ $PROFILE_BENCH || $bench =~ $PROFILE_BENCH ]] || continue
		local bin=$out/$(basename "$pkg").test
		(cd "$ROOT" && "$GO" test -c -o "$bin" "$pkg") || die "go test -c $pkg failed"
		# Warm: the template database and the binary's first run.
		(cd "$ROOT/$pkg" && "$bin" -test.run '^$' -test.bench "^${bench}" -test.benchtime 50x >/dev/null 2>&1) || true
		pq -d postgres -c 'SELECT pg_stat_statements_reset()' >/dev/null
		c0=$(backend_ticks)
		t0=$(now_ms)
		(cd "$ROOT/$pkg" && "$bin" -test.run '^$' -test.bench "^${bench}" -test.benchtime "${n}x" -test.benchmem \
			-test.cpuprofile "$out/$name.cpu.pprof" -test.count 1) >"$out/$name.bench.txt" 2>&1 ||
			{
				cat "$out/$name.bench.txt" >&2
				die "benchmark $bench failed"
			}
		t1=$(now_ms)
		c1=$(backend_ticks)
		# Per request: every statement the cluster ran during the benchmark (setup included:
		# the calls the callbacks need are started outside the timer, and show as StartCall's
		# statement), by calls per request, mean time and rows.
		pq -d postgres -F $'\t' -c "
			SELECT round(calls::numeric / $n, 3), round(mean_exec_time::numeric, 3), round(total_exec_time::numeric * 1000 / $n, 1),
				round(rows::numeric / greatest(calls, 1), 2),
				round(shared_blks_hit::numeric / greatest(calls, 1), 1), round(shared_blks_read::numeric / greatest(calls, 1), 1),
				regexp_replace(left(query, 160), '\s+', ' ', 'g')
			FROM pg_stat_statements
			WHERE query !~* 'pg_stat_statements|^(BEGIN|COMMIT|ROLLBACK)$|pg_catalog|river_|DROP DATABASE|CREATE DATABASE'
			ORDER BY calls DESC, total_exec_time DESC LIMIT 25" >"$out/$name.statements.tsv"
		(cd "$ROOT" && "$GO" tool pprof -top -nodecount=30 "$bin" "$out/$name.cpu.pprof" >"$out/$name.pprof.txt" 2>/dev/null) || true
		{
			echo "== $name ($bench, $pkg, $n requests, $rev)"
			grep -E '^Benchmark' "$out/$name.bench.txt" || true
			awk -v c="$((c1 - c0))" -v hz="$hz" -v n="$n" 'BEGIN { printf "PostgreSQL CPU (all its processes, the setup included): %.0f us/request\n", c / hz * 1e6 / n }'
			echo "statements (calls per request, mean ms, exec us per request, rows/call, buffers hit/call, read/call, query);" \
				"the callbacks' supply of calls (StartCall outside the timer) shows as the WITH nb/WITH req statements:"
			cat "$out/$name.statements.tsv"
			echo "pprof -top (flat, the first lines):"
			sed -n '1,22p' "$out/$name.pprof.txt"
			echo
		} | tee "$out/$name.summary.txt"
		log "$name: $((t1 - t0)) ms"
	done
}

cmd=${1:-}
shift || true
case $cmd in
start) start ;;
stop) stop ;;
destroy)
	stop
	rm -rf "$PERF_DIR"
	log "removed $PERF_DIR"
	;;
url) url "${1:-postgres}" ;;
psql) pq "$@" ;;
profile) profile ;;
*) die "usage: $0 start|stop|destroy|url [DB]|psql [ARGS]|profile" ;;
esac

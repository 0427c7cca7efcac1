# callrelay — developer tasks. `make help` lists them.

SHELL := /bin/bash
.DEFAULT_GOAL := help

# Go from PATH, else the machine's /usr/local/go.
export PATH := $(PATH):/usr/local/go/bin
GO ?= go

BIN := bin/callrelay
PKG := ./cmd/callrelay

# Where `make run` drops emails when SMTP_URL is unset (your environment wins).
CALLRELAY_MAIL_DIR ?= .data/mail

.PHONY: help run test testdb lint build migrate db db-stop clean distclean loadtest demo callsim screenshots

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# The server is built, then exec'd: it is make's own child, so Ctrl-C and a SIGTERM to make (which
# make passes to its child) stop it. `go run` would not pass a SIGTERM on, and its child would
# keep serving.
run: build ## serve locally: Postgres (scripts/devdb.sh) + dev secrets (.data/dev.env), migrations at start-up
	@set -euo pipefail; \
	DATABASE_URL="$$(scripts/devdb.sh)"; export DATABASE_URL; \
	eval "$$(scripts/devenv.sh env)"; \
	export CALLRELAY_MAIL_DIR="$(CALLRELAY_MAIL_DIR)"; \
	mkdir -p "$$CALLRELAY_MAIL_DIR"; \
	scripts/devenv.sh hint; \
	exec ./$(BIN) serve

test: testdb ## run all tests with the race detector (needs Postgres, see TEST_DATABASE_URL)
	$(GO) test -race -count=1 ./...

testdb: ## make sure the test Postgres answers on 127.0.0.1:5432 (starts the system cluster)
	@scripts/testdb.sh

lint: ## go vet, staticcheck (pinned, not in go.mod) and a gofmt check (lists unformatted files)
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
	@unformatted="$$(find . -name '*.go' -not -path './.git/*' -not -path './.data/*' -not -path './vendor/*' -print0 | xargs -0 -r gofmt -l)"; \
	if [ -n "$$unformatted" ]; then \
		echo "gofmt: these files need formatting (run: gofmt -w <file>):"; \
		echo "$$unformatted"; \
		exit 1; \
	fi

screenshots: testdb ## render the voicemail email, the console and the inbox in headless Chromium (apt-get install chromium) into docs/img
	$(GO) test -count=1 -run TestEmailInBrowser ./internal/voicemail/ -update-screenshots
	$(GO) test -count=1 -run TestConsoleInBrowser ./internal/app/ -update-console-screenshots

build: ## static binary in bin/callrelay
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) $(PKG)

migrate: ## apply migrations to the dev database (DATABASE_URL, else scripts/devdb.sh)
	@set -euo pipefail; \
	DATABASE_URL="$$(scripts/devdb.sh)"; export DATABASE_URL; \
	eval "$$(scripts/devenv.sh env)"; \
	$(GO) run $(PKG) migrate

db: ## start (if needed) the dev Postgres and print its DATABASE_URL
	@scripts/devdb.sh

db-stop: ## stop the private dev cluster under .data/pg
	@scripts/devdb.sh stop

loadtest: ## wrk load test: POST /twilio/voice vs the express and go-ceiling peers (LOADTEST_PEERS names their folder; unset: callrelay alone), then callrelay's call-status and dial-outcome (DURATION=10s; scripts/loadtest.sh)
	@GO="$(GO)" scripts/loadtest.sh

# Issue 21's measurements, on a private PostgreSQL (port 55432, /tmp/callrelay-perf) with
# pg_stat_statements and auto_explain: never the shared one at :5432.
.PHONY: loadtest-profile loadtest-growth loadtest-pg-stop
loadtest-profile: ## per request of voice, call-status, dial-outcome: round trips, statements, allocations, CPU, pg_stat_statements, pprof (PROFILE_N=4000; scripts/loadtest/pgperf.sh)
	@GO="$(GO)" scripts/loadtest/pgperf.sh profile

loadtest-growth: ## each route's cost and plans at 10^4, 10^6, 10^7 generated calls (GROWTH_SIZES; scripts/loadtest/growth.sh)
	@GO="$(GO)" scripts/loadtest/growth.sh

loadtest-pg-stop: ## stop the private profiling cluster (scripts/loadtest/pgperf.sh destroy deletes it)
	@scripts/loadtest/pgperf.sh stop

# make bench: BENCH is the -bench regexp, COUNT the runs of each, BENCHTIME each run's length,
# BENCH_PKGS the packages. Before/after: make bench COUNT=6 >old.txt, change, make bench COUNT=6
# >new.txt, then go run golang.org/x/perf/cmd/benchstat@latest old.txt new.txt.
BENCH ?= .
COUNT ?= 1
BENCHTIME ?= 1s
BENCH_PKGS ?= ./internal/signature ./internal/twiml ./internal/callrelay ./internal/postgres ./internal/server
.PHONY: bench
bench: testdb ## benchmarks of the webhook hot paths with -benchmem (BENCH=. COUNT=1 BENCHTIME=1s BENCH_PKGS=...)
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -count $(COUNT) -benchtime $(BENCHTIME) $(BENCH_PKGS)

.PHONY: soak
soak: ## whole calls at half their measured peak rate for 5 min, watching callrelay's RSS and goroutines (SOAK_DURATION=5m SOAK_RATE=; scripts/loadtest/soak.sh)
	@GO="$(GO)" scripts/loadtest/soak.sh

demo: ## a whole call with no Twilio account: callrelay (make run defaults) + callsim, a transcribed voicemail, the email in .data/mail
	@GO="$(GO)" scripts/demo.sh

callsim: ## build the Twilio simulator into bin/callsim (see README: testing call flows locally)
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/callsim ./cmd/callsim

clean: ## remove build and test output (keeps .data: dev database and secrets)
	rm -rf bin
	rm -f callrelay *.test *.out coverage.* cover.html

distclean: clean db-stop ## also stop the dev cluster, drop the callrelay database devdb.sh created on a shared Postgres, delete .data (private database, secrets, mail)
	@scripts/devdb.sh drop
	rm -rf .data

# Cards API — every entry point a developer or CI needs. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV        := .venv
PY          := $(VENV)/bin/python
PORT        ?= 8002
# The embedded development cluster (`make run`) and the throwaway test cluster.
DEV_PGDATA  := .data/pg
DEV_PGPORT  ?= 54329
TEST_PGDATA := .data/test-pg
TEST_PGPORT ?= 54331
TEST_DSN    := postgresql://postgres@127.0.0.1:$(TEST_PGPORT)/postgres
# bench-smoke's own cluster and gateway (settable, so two checkouts can run `make test` at once).
SMOKE_PGPORT ?= 54362
SMOKE_GWPORT ?= 18004
# test-citus's throwaway Citus cluster: a coordinator on CITUS_PGPORT, workers on the next two.
CITUS_DIR    := .data/citus-test
CITUS_PGPORT ?= 54400

.PHONY: help deps bench-deps run migrate retention test lint lint-sql lint-python test-deploy \
        test-sql test-python test-client test-cluster-up test-cluster-down test-citus bench bench-citus \
        bench-smoke fuzz soak clean center-screenshots docs

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

deps: $(VENV)/.installed ## venv, pinned Python packages and the Debian packages
	@scripts/ensure-debian-packages

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

bench-deps: $(VENV)/.bench-installed

$(VENV)/.bench-installed: bench/requirements.txt $(VENV)/.installed
	@$(PY) -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	@touch $@

run: deps ## start everything: database (embedded unless DATABASE_URL), migrations, gateway on PORT
	@PORT=$(PORT) DEV_PGDATA=$(DEV_PGDATA) DEV_PGPORT=$(DEV_PGPORT) scripts/run-dev

migrate: deps ## apply sql/ to DATABASE_URL (or the embedded cluster)
	@if [ -n "$${DATABASE_URL:-}" ]; then $(PY) -m gateway.migrate "$$DATABASE_URL"; \
	else scripts/pgcluster start $(DEV_PGDATA) $(DEV_PGPORT) dev && \
	     $(PY) -m gateway.migrate "$$(scripts/pgcluster url $(DEV_PGPORT))"; fi

retention: deps ## remove expired idempotency keys and old usage events (DATABASE_URL or embedded)
	@if [ -n "$${DATABASE_URL:-}" ]; then scripts/retention "$$DATABASE_URL"; \
	else scripts/pgcluster start $(DEV_PGDATA) $(DEV_PGPORT) dev && \
	     scripts/retention "$$(scripts/pgcluster url $(DEV_PGPORT))"; fi

test: deps ## every check: lint, deploy assets, plpgsql_check, pgTAP, pytest (own throwaway cluster)
	@trap '$(MAKE) --no-print-directory test-cluster-down' EXIT; \
	$(MAKE) --no-print-directory lint && \
	$(MAKE) --no-print-directory test-deploy && \
	$(MAKE) --no-print-directory test-cluster-up && \
	$(MAKE) --no-print-directory test-sql && \
	$(MAKE) --no-print-directory test-python && \
	$(MAKE) --no-print-directory test-client && \
	$(MAKE) --no-print-directory bench-smoke && \
	$(MAKE) --no-print-directory test-citus

lint: lint-sql lint-python ## sqlfluff and ruff

lint-sql:
	@$(VENV)/bin/sqlfluff lint --processes 2 sql

lint-python:
	@$(VENV)/bin/ruff check gateway tests bench scripts client
	@$(VENV)/bin/ruff format --check gateway tests bench scripts client

test-deploy: ## Dockerfile, compose file, Prometheus rules and their unit tests, dashboard
	@deploy/check

test-cluster-up:
	@scripts/pgcluster destroy $(TEST_PGDATA)
	@scripts/pgcluster start $(TEST_PGDATA) $(TEST_PGPORT) test

test-cluster-down:
	@scripts/pgcluster destroy $(TEST_PGDATA)

test-sql: ## plpgsql_check and the pgTAP suite against a freshly migrated database
	@scripts/test-sql "$(TEST_DSN)"

test-citus: deps ## on a local Citus cluster of its own: distribution, delegation, shard move, worker loss (skipped without Citus)
	@scripts/test-citus $(CITUS_DIR) $(CITUS_PGPORT)

test-python: ## pytest: gateway and end-to-end tests against the test cluster
	@CARDS_TEST_DSN="$(TEST_DSN)" $(VENV)/bin/pytest -q

# The client package as a user gets it: a clean copy of client/, built and installed by pip into a
# fresh venv; its tests run with that venv's python against the real gateway (this venv's) and
# the test cluster.
CLIENT_WORK := .data/client-test
test-client: deps ## the cards-client package: clean build into a fresh venv, its tests against the real gateway
	@rm -rf $(CLIENT_WORK) && mkdir -p $(CLIENT_WORK)
	@cp -r client $(CLIENT_WORK)/client && find $(CLIENT_WORK)/client -name __pycache__ -prune -exec rm -rf {} +
	@python3 -m venv $(CLIENT_WORK)/venv
	@$(CLIENT_WORK)/venv/bin/pip install --disable-pip-version-check $(CLIENT_WORK)/client \
	    -r $(CLIENT_WORK)/client/requirements-test.txt > $(CLIENT_WORK)/pip.log 2>&1 \
	    || { cat $(CLIENT_WORK)/pip.log; exit 1; }
	@cd $(CLIENT_WORK) && CARDS_TEST_DSN="$(TEST_DSN)" CARDS_PROJECT_ROOT="$(CURDIR)" \
	    CARDS_GATEWAY_PYTHON="$(CURDIR)/$(PY)" CARDS_CLIENT_REQUIRE_GATEWAY=1 \
	    venv/bin/pytest -q -p no:cacheprovider client/tests
	@cd $(CLIENT_WORK) && venv/bin/mypy --strict --no-incremental client/cards_client

center-screenshots: deps ## the browser suite, saving a screenshot of each Card Center page in docs/center/
	@trap '$(MAKE) --no-print-directory test-cluster-down' EXIT; \
	$(MAKE) --no-print-directory test-cluster-up && \
	CENTER_SCREENSHOTS=docs/center CARDS_TEST_DSN="$(TEST_DSN)" $(VENV)/bin/pytest -q tests/test_center_browser.py

SIZE ?= 100k
bench: deps bench-deps ## every endpoint: pgbench vs gateway (wrk) at 4/16/64 connections; SIZE=100k|1m|10m; then bench-citus
	@$(PY) -m bench.run --size $(SIZE)
	@if scripts/citus-cluster available; then $(MAKE) --no-print-directory bench-citus; \
	else echo "bench: Citus is not installed: no Citus run (docs/SCALING.md)"; fi

BENCH_CITUS_ARGS ?=
bench-citus: deps bench-deps ## gateway in front of one node and of a local Citus cluster: batch, retrieve, usage
	@$(PY) -m bench.citus $(BENCH_CITUS_ARGS)

bench-smoke: deps ## the bench harness end to end in under a minute (checks the harness, not speed)
	@$(PY) -m bench.run --smoke --pg-port $(SMOKE_PGPORT) --gw-port $(SMOKE_GWPORT)

fuzz: deps ## Schemathesis from /openapi.json, at least 1,000 cases; results in docs/FUZZING.md
	@$(PY) -m scripts.fuzz

soak: deps ## 10 minutes at 70 % of the measured maximum; results in docs/SOAK.md
	@$(PY) -m scripts.soak

docs: deps ## rewrite the generated tables of docs/API.md from the route table (tests/test_docs.py checks them)
	@$(PY) -m gateway.docs

clean: ## stop the embedded cluster and remove .data and the venv
	@scripts/pgcluster stop $(DEV_PGDATA)
	@rm -rf .data $(VENV)

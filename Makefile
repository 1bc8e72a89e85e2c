# The two commands of the README: `make run` and `make test`. Everything else builds on them.
PYTHON_BIN ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# `make run` installs only what running needs (requirements/base.txt); `make test` adds the test tools.
RUN_INSTALLED := $(VENV)/.run-installed
# make run PORT=18000 PEERS_PORT=18001: the service's port, and the first of the three peers' ports.
PORT ?= 8000
PEERS_PORT ?= 8001
# make run SIP_PORT=7001: the SIP2 gateway's port (self-check kiosks).
SIP_PORT ?= 6001

LINT_VENV := .venv-lint
LINT_INSTALLED := $(LINT_VENV)/.installed

.PHONY: run test lint lint-deploy openapi chromium promtool

# PYTHON_BIN must be Python 3.11 or newer: checked by every venv rule before it makes a virtualenv, so
# an older Python stops at once with one line saying what to run (`make python-version` checks alone).
PYTHON_MIN ?= 3.11
PYTHON_GOAL = $(or $(filter-out python-version,$(firstword $(MAKECMDGOALS))),run)
CHECK_PYTHON = $(PYTHON_BIN) -c 'import sys; sys.exit(sys.version_info < tuple(map(int, "$(PYTHON_MIN)".split("."))))' \
	2>/dev/null || { echo "make: Python >= $(PYTHON_MIN) is needed, $(PYTHON_BIN) is \
	$$($(PYTHON_BIN) --version 2>/dev/null || echo missing): run rm -rf $(VENV) $(LINT_VENV) && make $(PYTHON_GOAL) \
	PYTHON_BIN=python3.12"; exit 1; }

.PHONY: python-version
python-version:
	@$(CHECK_PYTHON)

$(RUN_INSTALLED): requirements/base.txt requirements/base.lock.txt requirements/pip.lock.txt
	@$(CHECK_PYTHON)
	$(PYTHON_BIN) tools/scripts/check_locks.py
	$(PYTHON_BIN) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements/pip.lock.txt
	$(PY) -m pip install --quiet --require-hashes -r requirements/base.lock.txt
	touch $(RUN_INSTALLED)

$(INSTALLED): requirements/base.txt requirements/test.txt requirements/test.lock.txt requirements/pip.lock.txt
	@$(CHECK_PYTHON)
	$(PYTHON_BIN) tools/scripts/check_locks.py
	$(PYTHON_BIN) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements/pip.lock.txt
	$(PY) -m pip install --quiet --require-hashes -r requirements/test.lock.txt
	touch $(INSTALLED)

# Every venv installs from the hashed locks of requirements/ (`make lock` writes them): pip refuses any
# package, transitive ones included, whose version or hash the lock does not name. An input edited
# without `make lock` stops the rule at check_locks.py, which says so, instead of installing a stale lock.
# The deployment linters (checkov and friends) pin their own dependencies: a venv of their own.
$(LINT_INSTALLED): requirements/lint.txt requirements/lint.lock.txt requirements/pip.lock.txt
	@$(CHECK_PYTHON)
	$(PYTHON_BIN) tools/scripts/check_locks.py
	$(PYTHON_BIN) -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/python -m pip install --quiet --require-hashes -r requirements/pip.lock.txt
	$(LINT_VENV)/bin/python -m pip install --quiet --require-hashes -r requirements/lint.lock.txt
	touch $(LINT_INSTALLED)

# The locks are compiled for the Docker image's interpreter and platform (CPython 3.11.14, linux
# x86_64, glibc), every file's hash of each pinned release included. A lock keeps its versions
# unless its input asks for another: `make lock UPGRADE=1` moves every package to its newest release.
LOCK_VENV := .venv-lock
UV := $(LOCK_VENV)/bin/uv
UV_COMPILE := $(UV) pip compile --quiet --generate-hashes --python-version 3.11.14 \
	--python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock" $(if $(UPGRADE),--upgrade)

$(UV): requirements/uv.lock.txt
	@$(CHECK_PYTHON)
	$(PYTHON_BIN) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --require-hashes -r requirements/uv.lock.txt
	touch $(UV)

.PHONY: lock
## lock: recompile requirements/*.lock.txt (hashed, every transitive package) from requirements/*.txt
lock: $(UV)
	$(UV_COMPILE) requirements/pip.txt -o requirements/pip.lock.txt
	$(UV_COMPILE) requirements/uv.txt -o requirements/uv.lock.txt
	$(UV_COMPILE) requirements/base.txt -o requirements/base.lock.txt
	$(UV_COMPILE) requirements/test.txt -c requirements/base.lock.txt -o requirements/test.lock.txt
	$(UV_COMPILE) requirements/bench.txt -c requirements/test.lock.txt -o requirements/bench.lock.txt
	$(UV_COMPILE) requirements/lint.txt -o requirements/lint.lock.txt
	$(PYTHON_BIN) tools/scripts/check_locks.py

## run: the service on http://127.0.0.1:$(PORT) with the reference peers, the relay and the scheduler
run: $(RUN_INSTALLED)
	$(PY) tools/scripts/run_local.py --port $(PORT) --peers-port $(PEERS_PORT) --sip-port $(SIP_PORT)

.PHONY: demo
## demo: the README's API examples, in order, against a running `make run` (same PORT / PEERS_PORT)
demo: $(RUN_INSTALLED)
	$(PY) tools/scripts/readme_walkthrough.py --port $(PORT) --peers-port $(PEERS_PORT)

# The tests of what runs differently on SQLite (`make run`'s default database): the write path's
# statements, idempotent answers, statement counts, erasure. `make test` runs them a second time there.
SQLITE_TESTS := tests/circulation/test_writes.py tests/api/test_lend_return.py tests/api/test_idempotency.py \
	tests/db tests/perf/test_query_counts.py tests/services/test_privacy.py \
	tests/services/test_erasure_scan.py tests/api/test_circulation_rules.py tests/api/test_fines.py

# The tests run in TEST_WORKERS processes (pytest-xdist; each has its own test database), each taking
# the next test as it finishes one. Many tests wait on subprocesses and sockets, so two workers finish
# in about 60 % of one's time on 2 cores. TEST_WORKERS=0 runs them in this process, one at a time.
TEST_WORKERS ?= 2
PYTEST_WORKERS = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist worksteal)

## test: the linters, then every test on PostgreSQL (DATABASE_URL, else 127.0.0.1:5432, else a throwaway
## server of its own: config/test_database.py), then the tests of what differs on SQLite, on SQLite
test: $(INSTALLED) $(LINT_INSTALLED) lint chromium promtool
	$(PY) -m pytest $(PYTEST_WORKERS)
	DATABASE_URL=sqlite:///$(CURDIR)/var/test-sqlite.sqlite3 $(PY) -m pytest $(PYTEST_WORKERS) -m "not postgres" $(SQLITE_TESTS)

## openapi: regenerate openapi.yaml from the code (a test fails when the committed file is stale)
openapi: $(INSTALLED)
	$(PY) manage.py spectacular --file openapi.yaml --validate --fail-on-warn

.PHONY: asyncapi
## asyncapi: regenerate asyncapi.yaml (the domain events) from the code (a test fails when it is stale)
asyncapi: $(INSTALLED)
	$(PY) -m lending.events.asyncapi

## chromium: Debian's Chromium for the browser test, installed with apt-get (as root) when missing.
## Never fatal here: without it the browser test skips with its reason, or fails under CI=true.
CHROMIUM ?= /usr/bin/chromium
chromium:
	@if [ -x "$(CHROMIUM)" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
		echo "chromium: $(CHROMIUM) is missing and apt-get is unavailable here (needs root)"; exit 0; fi; \
	echo "chromium: installing Debian's chromium with apt-get"; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get install -y -qq chromium >/dev/null 2>&1 \
		|| { apt-get update -qq && apt-get install -y -qq chromium; } \
		|| echo "chromium: apt-get install chromium failed"

## promtool: Debian's prometheus package (promtool checks and unit-tests the alert rules), installed with
## apt-get (as root) when missing. Never fatal here: lint-deploy then says what is missing.
promtool:
	@if command -v promtool >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
		echo "promtool: missing and apt-get is unavailable here (needs root)"; exit 0; fi; \
	echo "promtool: installing Debian's prometheus package with apt-get"; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 \
		|| { apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus; } \
		|| echo "promtool: apt-get install prometheus failed"

## lint: ruff (lint and format) and mypy (settings in pyproject.toml); .pre-commit-config.yaml runs the same;
## then the locks (hashed and current) and pip-audit over them (fails on a known vulnerability; offline, says so)
lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) tools/scripts/check_locks.py
	$(PY) tools/scripts/audit_dependencies.py

## lint-deploy: offline checks of the Dockerfile, the Compose files and both Kubernetes overlays
lint-deploy: $(INSTALLED) $(LINT_INSTALLED) promtool
	APP_PYTHON=$(PY) bash tools/scripts/lint_deploy.sh

.PHONY: fuzz
## fuzz: schemathesis (every check, positive and negative data) over the whole API, FUZZ_EXAMPLES per operation
FUZZ_EXAMPLES ?= 1000
fuzz: $(INSTALLED)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest tests/api/test_schemathesis.py -p no:cacheprovider -q --timeout 3600

.PHONY: chaos
## chaos: the whole system on PostgreSQL under load, SIGKILLs and peer faults, then every invariant checked
CHAOS_ARGS ?= --duration 60 --max-duration 600 --clients 24 --kill-interval 2.5 --fault-interval 5 --min-operations 2000 --min-kills 20
chaos: $(INSTALLED)
	$(PY) -m tools.chaos $(CHAOS_ARGS)

BENCH_INSTALLED := $(VENV)/.bench-installed
$(BENCH_INSTALLED): $(INSTALLED) requirements/bench.txt requirements/bench.lock.txt
	$(PYTHON_BIN) tools/scripts/check_locks.py
	$(PY) -m pip install --quiet --require-hashes -r requirements/bench.lock.txt
	touch $(BENCH_INSTALLED)

.PHONY: bench
## bench: load benchmark on PostgreSQL (wrk from Debian's packages); results in tools/bench/results/
bench: $(BENCH_INSTALLED)
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	$(PY) -m tools.bench.run $(BENCH_ARGS)

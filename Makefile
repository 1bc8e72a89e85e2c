# The two commands of the README: `make run` and `make test`. Everything else builds on them.
PYTHON_BIN ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: run test lint

$(INSTALLED): requirements/base.txt requirements/test.txt
	$(PYTHON_BIN) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==26.3
	$(PY) -m pip install --quiet -r requirements/test.txt
	touch $(INSTALLED)

## run: the service on http://127.0.0.1:8000 with the reference peers, the relay and the scheduler
run: $(INSTALLED)
	$(PY) scripts/run_local.py

## test: every test (PostgreSQL when reachable, else SQLite), after the linters
test: $(INSTALLED) lint
	$(PY) -m pytest

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .

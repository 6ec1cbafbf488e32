# geo311 developer commands. `make setup` prepares everything the others need (idempotent).
# Run `make` or `make help` for the list.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
export HOST PORT
# Passed to pytest by `make test`, e.g. make test PYTEST_ARGS="-x -k lookup"
export PYTEST_ARGS
# Used by `make bench`, e.g. make bench ONLY=subdivide_piece_size
ONLY ?=

.PHONY: help setup run test lint bench lock clean

help: ## show this list
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{ printf "  make %-6s %s\n", $$1, $$2 }'

setup: ## install system packages, start PostgreSQL, build .venv, create the database (idempotent)
	@bash scripts/setup.sh

run: setup ## migrate, load the Chicago demo, serve on http://127.0.0.1:8000 with a job worker (HOST=, PORT=)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v0
	$(PY) manage.py load_demo
	exec bash scripts/serve.sh

# The page tests drive a real browser: setup installs Debian's chromium for them.
test: export GEO311_SETUP_BROWSER := 1
test: setup ## ruff, mypy, migrations check, deploy check, pytest (what CI runs)
	@bash scripts/test.sh

lint: setup ## ruff (lint + format check) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy geo311 boundaries importers maps

# The HTTP benchmarks load the server with wrk: setup installs Debian's wrk for them.
bench: export GEO311_SETUP_BENCH := 1
bench: setup ## run the benchmarks in bench/ (ONLY=<name> for one); they use their own database
	$(PY) -m bench $(if $(ONLY),--only $(ONLY))

# A fresh venv, so the lock holds exactly what pyproject.toml pulls in (with dev tools).
lock: ## regenerate requirements/lock.txt from pyproject.toml
	@set -euo pipefail; \
	tmp="$$(mktemp -d)"; trap 'rm -rf "$$tmp"' EXIT; \
	python3 -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/pip" install -q '.[dev]'; rm -rf build; \
	"$$tmp/venv/bin/pip" freeze --exclude-editable --exclude geo311 > "$$tmp/lock.txt"; \
	if cmp -s "$$tmp/lock.txt" requirements/lock.txt; then \
		echo "requirements/lock.txt is already up to date"; \
	else \
		mv "$$tmp/lock.txt" requirements/lock.txt; \
		echo "requirements/lock.txt updated ($$(wc -l < requirements/lock.txt) packages): review it, then make setup"; \
	fi

clean: ## remove caches and collected static files (keeps .venv, the database and var/media)
	rm -rf .mypy_cache .ruff_cache .pytest_cache var/static build
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

#!/usr/bin/env bash
# The checks CI runs (`make test`, .ci/run), in order, stopping at the first failure.
# Assumes scripts/setup.sh has run. PYTEST_ARGS is passed on to pytest (e.g. "-x -k lookup").
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=.venv/bin
step() {
    local name="$1"
    shift
    printf '\n==> %s\n' "$name"
    if ! "$@"; then
        printf '\nmake test: FAILED at step "%s"\n  command: %s\n' "$name" "$*" >&2
        exit 1
    fi
}

# check --deploy must see production settings as they would run: a real-looking secret key
# (generated here, never stored) and a non-local host.
deploy_check() {
    DJANGO_SETTINGS_MODULE=geo311.settings.production \
        DJANGO_SECRET_KEY="$("$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(64))')" \
        DJANGO_ALLOWED_HOSTS=geo311.example.org \
        "$BIN/python" manage.py check --deploy --fail-level WARNING
}

read -r -a pytest_args <<<"${PYTEST_ARGS:-}"

step "ruff check" "$BIN/ruff" check .
step "ruff format --check" "$BIN/ruff" format --check .
step "mypy" "$BIN/mypy" geo311 boundaries importers maps
step "makemigrations --check" "$BIN/python" manage.py makemigrations --check --dry-run
step "check --deploy (production settings)" deploy_check
step "pytest" "$BIN/pytest" "${pytest_args[@]}"
printf '\nmake test: all steps passed\n'

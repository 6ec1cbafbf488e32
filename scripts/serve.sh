#!/usr/bin/env bash
# `make run`'s server: one procrastinate worker (the job queue in PostgreSQL) beside gunicorn.
# Ctrl-C or the end of gunicorn stops the worker too.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"

"$BIN/python" manage.py procrastinate worker &
worker=$!
trap 'kill "$worker" 2>/dev/null; wait "$worker" 2>/dev/null || true' EXIT INT TERM

echo "serving on http://$HOST:$PORT/ (Ctrl-C to stop); job worker pid $worker"
"$BIN/gunicorn" geo311.wsgi -b "$HOST:$PORT" --workers 3 --access-logfile -

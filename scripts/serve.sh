#!/usr/bin/env bash
# `make run`'s server: gunicorn (WSGI) for the site and APIs, uvicorn (ASGI) beside it for the
# live event streams (/api/v1/requests/{id}/events: each holds a connection open, which a sync
# gunicorn worker must not), and one procrastinate worker (the job queue in PostgreSQL) that
# sends the notifications. Ctrl-C or the end of gunicorn stops the other two.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"
EVENTS_PORT="${EVENTS_PORT:-$((PORT + 1))}"
# Links in messages and the pages' event streams point at these two servers.
export GEO311_SITE_URL="${GEO311_SITE_URL:-http://$HOST:$PORT}"
export GEO311_EVENTS_URL="${GEO311_EVENTS_URL:-http://$HOST:$EVENTS_PORT}"

# Four jobs at a time (their sends overlap; make bench ONLY=notification_jobs). Finished jobs
# are deleted: the delivery log (admin: Notifications > Deliveries) keeps what was sent, and
# failed jobs stay for staff to see and retry.
"$BIN/python" manage.py procrastinate worker --concurrency 4 --delete-jobs successful &
worker=$!
"$BIN/uvicorn" geo311.asgi:application --host "$HOST" --port "$EVENTS_PORT" --no-access-log &
events=$!
trap 'kill "$worker" "$events" 2>/dev/null; wait "$worker" "$events" 2>/dev/null || true' EXIT INT TERM

echo "serving on http://$HOST:$PORT/ (Ctrl-C to stop); live updates on $GEO311_EVENTS_URL;" \
     "job worker pid $worker"
"$BIN/gunicorn" geo311.wsgi -b "$HOST:$PORT" --workers 3 --access-logfile -

#!/usr/bin/env bash
# Serve the app and run one worker (queues api and gpu) until Ctrl-C / SIGTERM, then stop both cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
PORT=${PORT:-8000}
export ALLOW_PRIVATE_ENDPOINTS=${ALLOW_PRIVATE_ENDPOINTS:-true}

"$PY" -m celery -A evalworkers.celery worker -Q api,gpu --concurrency 1 --pool solo -n "local@%h" -l INFO &
worker=$!
"$PY" -m gunicorn config.wsgi:application --bind "127.0.0.1:${PORT}" --workers 2 --access-logfile - &
web=$!

stop() {
  trap - INT TERM
  echo "stopping web ($web) and worker ($worker)..."
  kill -TERM "$web" "$worker" 2>/dev/null || true
  wait "$web" "$worker" 2>/dev/null || true
  echo "stopped."
}
trap 'stop; exit 0' INT TERM
echo "LongCtx Leaderboard on http://127.0.0.1:${PORT}/ (Ctrl-C stops web and worker)"
# If either process dies, stop the other and report.
wait -n "$web" "$worker" || true
echo "a process exited; shutting down" >&2
stop
exit 1

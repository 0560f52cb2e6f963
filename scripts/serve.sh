#!/usr/bin/env bash
# Serve the app and run the workers (queues api and gpu) until Ctrl-C / SIGTERM, then stop them all cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
PORT=${PORT:-8000}
export ALLOW_PRIVATE_ENDPOINTS=${ALLOW_PRIVATE_ENDPOINTS:-true}

# Two workers: endpoints (queue api) never wait behind a local model's long cells (queue gpu, one at a time).
"$PY" -m celery -A evalworkers.celery worker -Q api --concurrency 2 --pool threads -n "api@%h" -l INFO &
api_worker=$!
"$PY" -m celery -A evalworkers.celery worker -Q gpu --concurrency 1 --pool solo -n "gpu@%h" -l INFO &
gpu_worker=$!
"$PY" -m gunicorn config.wsgi:application --bind "127.0.0.1:${PORT}" --workers 2 --access-logfile - &
web=$!

stop() {
  trap - INT TERM
  echo "stopping web ($web) and workers ($api_worker, $gpu_worker)..."
  kill -TERM "$web" "$api_worker" "$gpu_worker" 2>/dev/null || true
  wait "$web" "$api_worker" "$gpu_worker" 2>/dev/null || true
  echo "stopped."
}
trap 'stop; exit 0' INT TERM
echo "LongCtx Leaderboard on http://127.0.0.1:${PORT}/ (Ctrl-C stops web and workers)"
# If any process dies, stop the others and report.
wait -n "$web" "$api_worker" "$gpu_worker" || true
echo "a process exited; shutting down" >&2
stop
exit 1

#!/usr/bin/env bash
# Serve the app, run the workers (queues api and gpu) and the scheduler (celery beat: recovery of lost work every
# RECOVERY_INTERVAL_S) until Ctrl-C / SIGTERM, then stop them all cleanly.
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
mkdir -p "${VAR_DIR:-var}"
"$PY" -m celery -A evalworkers.celery beat --schedule "${VAR_DIR:-var}/celerybeat-schedule" -l INFO &
beat=$!
"$PY" -m gunicorn config.wsgi:application --bind "127.0.0.1:${PORT}" --workers 2 --access-logfile - &
web=$!

stop() {
  trap - INT TERM
  echo "stopping web ($web), workers ($api_worker, $gpu_worker) and scheduler ($beat)..."
  kill -TERM "$web" "$api_worker" "$gpu_worker" "$beat" 2>/dev/null || true
  wait "$web" "$api_worker" "$gpu_worker" "$beat" 2>/dev/null || true
  echo "stopped."
}
trap 'stop; exit 0' INT TERM
echo "LongCtx Leaderboard on http://127.0.0.1:${PORT}/ (Ctrl-C stops web, workers and scheduler)"
# If any process dies, stop the others and report.
wait -n "$web" "$api_worker" "$gpu_worker" "$beat" || true
echo "a process exited; shutting down" >&2
stop
exit 1

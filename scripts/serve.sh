#!/usr/bin/env bash
# Serve the app with its workers (queues api and gpu), the control worker and the scheduler (celery beat: the
# recovery of lost work every RECOVERY_INTERVAL_S on queue control) until Ctrl-C / SIGTERM.
#
# A worker or the scheduler that dies (killed, crashed) is started again, as compose's restart policy does; the
# scheduler then hands the dead worker's cells to a live one, which resumes them. If the web server dies, or a
# process keeps dying, everything stops. Ctrl-C gives the workers GRACE_S seconds to finish their current
# sample, then stops them cold: a cell cut short is resumed, from its stored samples, after the next start.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
PORT=${PORT:-8000}
GRACE_S=${GRACE_S:-10}
MAX_RESTARTS=${MAX_RESTARTS:-10}
export ALLOW_PRIVATE_ENDPOINTS=${ALLOW_PRIVATE_ENDPOINTS:-true}
mkdir -p "${VAR_DIR:-var}"
CELERY=("$PY" -m celery -A evalworkers.celery)

declare -A pids
# Endpoints (queue api) never wait behind a local model's long cells (queue gpu, one at a time), and the
# scheduler's recovery (queue control) never waits behind either.
start_api() { "${CELERY[@]}" worker -Q api --concurrency 2 --pool threads -n "api@%h" -l INFO & pids[api]=$!; }
start_gpu() { "${CELERY[@]}" worker -Q gpu --concurrency 1 --pool solo -n "gpu@%h" -l INFO & pids[gpu]=$!; }
start_control() {
  "${CELERY[@]}" worker -Q control --concurrency 1 --pool solo -n "control@%h" -l INFO & pids[control]=$!
}
start_beat() {
  "${CELERY[@]}" beat --schedule "${VAR_DIR:-var}/celerybeat-schedule" -l INFO & pids[beat]=$!
}

for name in api gpu control beat; do "start_$name"; done
"$PY" -m gunicorn config.wsgi:application --bind "127.0.0.1:${PORT}" --workers 2 --access-logfile - &
web=$!

alive() { kill -0 "$1" 2>/dev/null; }

stop() {
  trap - INT TERM
  local all=("$web" "${pids[@]}")
  echo "stopping web ($web), workers (${pids[api]}, ${pids[gpu]}, ${pids[control]}) and scheduler (${pids[beat]})..."
  kill -TERM "${all[@]}" 2>/dev/null
  for _ in $(seq 1 "$GRACE_S"); do
    local left=0
    for p in "${all[@]}"; do alive "$p" && left=1; done
    [ "$left" = 0 ] && break
    sleep 1
  done
  kill -QUIT "${all[@]}" 2>/dev/null  # cold shutdown: cells in progress are recovered after the next start
  sleep 1
  kill -KILL "${all[@]}" 2>/dev/null
  wait 2>/dev/null
  echo "stopped."
}
trap 'stop; exit 0' INT TERM
echo "LongCtx Leaderboard on http://127.0.0.1:${PORT}/ (Ctrl-C stops web, workers and scheduler)"

restarts=0
while true; do
  wait -n
  if ! alive "$web"; then
    echo "the web server exited; shutting down" >&2
    stop
    exit 1
  fi
  for name in api gpu control beat; do
    if ! alive "${pids[$name]}"; then
      restarts=$((restarts + 1))
      if [ "$restarts" -gt "$MAX_RESTARTS" ]; then
        echo "the $name process exited again ($restarts restarts); shutting down" >&2
        stop
        exit 1
      fi
      echo "the $name process (${pids[$name]}) exited; starting it again (its cells are handed on by the" \
           "scheduler within about a minute)" >&2
      sleep 1
      "start_$name"
    fi
  done
done

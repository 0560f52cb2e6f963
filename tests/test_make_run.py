"""`make run`'s serving step on the embedded default: web answers, the workers consume, the scheduler sends its
recovery, SIGTERM stops them all."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from kombu import Connection

from config.env import filesystem_transport_options
from tests.conftest import ROOT, free_port, wait_for

pytestmark = pytest.mark.slow


def embedded_env(var: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "SECRET_KEY", "FIELD_ENCRYPTION_KEY")
           and not k.startswith("PYTEST_")}
    env.update(VAR_DIR=str(var), PY=sys.executable, DJANGO_SETTINGS_MODULE="config.settings")
    return env


def test_serve_script_runs_web_workers_and_scheduler_and_stops_cleanly(tmp_path: Path) -> None:
    var = tmp_path / "var"
    env = embedded_env(var)
    for command in (["migrate", "--noinput"], ["seed_versions"], ["load_reported"],
                    ["collectstatic", "--noinput", "-v", "0"]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True,
                       capture_output=True, timeout=300)
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(["scripts/serve.sh"], cwd=ROOT, env={**env, "PORT": str(port)}, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    output = lambda: (tmp_path / "serve.log").read_text()  # noqa: E731
    try:
        def home() -> str | None:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
            except httpx.HTTPError:
                return None
            return response.text if response.status_code == 200 else None

        page = wait_for(home, 60, "the web server to answer", output)
        assert "v1" in page and "smoke" in page
        assert "Yi (34B)" in page and "not measured here" in page  # real, sourced models on the first page

        with Connection("filesystem://", transport_options=filesystem_transport_options(var / "broker")) as conn:
            from evalworkers.tasks import heartbeat

            heartbeat.apply_async(args=["api"], queue="api", connection=conn)

        def workers_seen() -> bool:  # each of the three workers reports itself (and the api one ran the task)
            with sqlite3.connect(var / "db.sqlite3") as db:
                queues = {q for (q,) in db.execute("SELECT queue FROM leaderboard_workerheartbeat")}
            return queues >= {"api", "gpu", "control"}

        wait_for(workers_seen, 90, "the workers started by serve.sh to report themselves", output)
        status = httpx.get(f"http://127.0.0.1:{port}/status/workers.json", timeout=5).json()
        assert status["workers"][0]["queue"] == "api"
        assert {(w["queue"], w["state"]) for w in status["workers"]} >= {("api", "alive"), ("gpu", "alive"),
                                                                         ("control", "alive")}

        def recovery_ran() -> bool:
            with sqlite3.connect(var / "db.sqlite3") as db:
                return bool(db.execute("SELECT count(*) FROM leaderboard_taskrecord WHERE task_name = "
                                       "'evalworkers.tasks.recover_lost_work' AND state = 'succeeded'").fetchone()[0])

        wait_for(recovery_ran, 120, "the scheduler started by serve.sh to send the recovery of lost work", output)

        # An operator kills the api worker: serve.sh starts it again, and the site stays up.
        found = subprocess.run(["pgrep", "-s", str(proc.pid), "-f", "--", "-Q api "], capture_output=True, text=True)
        os.kill(int(found.stdout.split()[0]), signal.SIGKILL)
        wait_for(lambda: "the api process" in output() and "starting it again" in output(), 30,
                 "serve.sh to start the killed api worker again", output)
        assert home() is not None
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == 0, output()
    assert "stopped." in output()
    time.sleep(0.5)
    leftovers = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert leftovers == [], f"processes left running: {leftovers}"

"""Server time of the leaderboard pages with many completed submissions, next to a small static file.

Fills Django's *test* database (created and dropped here; PostgreSQL when DATABASE_URL names it, else SQLite
under a temporary VAR_DIR) with N demo submissions (leaderboard/demo_data.py, default 1,000 on v1: 14 tasks x 6
lengths, a third of them local models with KV methods x budgets), then times 50 requests of each page through
Django's test client (the whole middleware stack, WhiteNoise serving the static file) and prints medians and p95;
then the same through a running gunicorn over HTTP (one worker, a keep-alive client), as a visitor sees it.

    .venv/bin/python bench/leaderboard_page.py [--submissions 1000] [--requests 50]

Last line: JSON with index_median_ms, index_p95_ms, model_median_ms, compare_median_ms, static_median_ms,
ratio_to_static, submissions (test client), and the same names prefixed http_ (gunicorn).
Target (issue): `/` median under 50 ms and within 5x of the static file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def serve(database_url: str, var_dir: str, port: int):
    """gunicorn on the bench's database; returns the process once it answers."""
    import subprocess

    import httpx

    env = {**os.environ, "DATABASE_URL": database_url, "VAR_DIR": var_dir, "LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind",
                             f"127.0.0.1:{port}", "--workers", "1"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("gunicorn did not start")


def database_url(connection) -> str:
    cfg = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{cfg['NAME']}"
    host, port = cfg.get("HOST") or "127.0.0.1", cfg.get("PORT") or 5432
    return f"postgres://{cfg.get('USER') or 'postgres'}@{host}:{port}/{cfg['NAME']}"


def timed(client, url: str, n: int) -> tuple[float, float, float]:
    """(first request ms, median ms, p95 ms) over n requests after the first."""
    started = time.perf_counter()
    response = client.get(url)
    first = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise SystemExit(f"{url} answered {response.status_code}")
    times = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.get(url)
        if hasattr(response, "streaming_content"):
            b"".join(response.streaming_content)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return first, statistics.median(times), times[int(0.95 * (len(times) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    var_dir = tempfile.mkdtemp(prefix="longctx-pagebench-")
    os.environ.update(VAR_DIR=var_dir, DJANGO_SETTINGS_MODULE="config.settings", LOG_LEVEL="WARNING")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment

    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        from leaderboard import demo_data
        from leaderboard.models import BenchmarkVersion, LeaderboardRow

        call_command("seed_versions", verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        version = BenchmarkVersion.objects.get(is_default=True)
        started = time.perf_counter()
        summary = demo_data.generate(version, args.submissions, seed=7)
        fill_s = time.perf_counter() - started
        print(f"filled {summary.line()} in {fill_s:.1f}s")
        rows = list(LeaderboardRow.objects.filter(version=version, method="full").order_by("-average")[:3])
        client = Client()
        pages = {
            "index": "/",
            "index_filtered": "/?method=full&category=retrieval&sort=-effective",
            "model": f"/models/{rows[0].submission_id}/",
            "compare": f"/compare/?m={rows[0].pk}&m={rows[1].pk}&m={rows[2].pk}",
            "static": "/static/css/site.css",
        }
        figures: dict[str, float | int] = {"submissions": summary.submissions, "rows": summary.rows}
        for name, url in pages.items():
            first, median, p95 = timed(client, url, args.requests)
            figures.update({f"{name}_first_ms": round(first, 2), f"{name}_median_ms": round(median, 2),
                            f"{name}_p95_ms": round(p95, 2)})
            print(f"{name:<15} first {first:8.1f} ms   median {median:7.2f} ms   p95 {p95:7.2f} ms   {url}")
        figures["ratio_to_static"] = round(figures["index_median_ms"] / figures["static_median_ms"], 2)
        import httpx

        server = serve(database_url(connection), var_dir, 8917)
        try:
            with httpx.Client(base_url="http://127.0.0.1:8917") as http:
                for name, url in pages.items():
                    first, median, p95 = timed(http, url, args.requests)
                    figures.update({f"http_{name}_median_ms": round(median, 2),
                                    f"http_{name}_p95_ms": round(p95, 2)})
                    print(f"http {name:<10} first {first:8.1f} ms   median {median:7.2f} ms   p95 {p95:7.2f} ms")
        finally:
            server.terminate()
            server.wait(10)
        figures["http_ratio_to_static"] = round(figures["http_index_median_ms"] / figures["http_static_median_ms"], 2)
        figures["db_vendor"] = connection.vendor
        for prefix in ("", "http_"):
            median, ratio = figures[f"{prefix}index_median_ms"], figures[f"{prefix}ratio_to_static"]
            ok = median < 50 and ratio <= 5
            print(f"{prefix or 'client '}/ median {median} ms (target < 50), {ratio}x static (target <= 5): "
                  f"{'PASS' if ok else 'FAIL'}")
        print(json.dumps(figures))
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        shutil.rmtree(var_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How close the evaluation engine gets to the raw HTTP ceiling of an instant-answer endpoint.

Runs N samples (default 2,000) at concurrency C (default 32) through the real engine (``runner.run_cell``:
sample generation, the endpoint backend, scoring, batched SampleResult upserts, the cell summary) against
a local instant-answer server (tests/fake_openai.py, in a process of its own so it does not compete for this
process's GIL), and in the same run fires the very same request bodies
with a bare ``httpx.Client`` + ``ThreadPoolExecutor(C)`` (no DB, no scoring, bodies built before timing): the
raw ceiling. Each side runs ``--rounds`` times, alternating, and the best of each counts.

The database is whatever DATABASE_URL says (SQLite under a temporary VAR_DIR when unset); the bench works in
Django's *test* database for it (created, migrated and dropped here), so it never touches real data.

    .venv/bin/python bench/endpoint_overhead.py [--samples 2000] [--concurrency 32] [--rounds 2]

The last line printed is JSON: engine_rps, ceiling_rps, ratio, overhead_ms_per_sample, and the breakdown.
Targets (issue): ratio >= 0.8 and overhead_ms_per_sample < 5.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGET_RATIO = 0.8
TARGET_OVERHEAD_MS = 5.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000, help="samples per run (default 2000)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight (default 32)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each side, best counts (default 2)")
    args = parser.parse_args()
    if args.samples < 1 or args.concurrency < 1 or args.rounds < 1:
        parser.error("--samples, --concurrency and --rounds must be at least 1")
    return args


def configure(args: argparse.Namespace) -> str:
    """Environment for config/settings.py; must run before django.setup(). Returns the temporary VAR_DIR."""
    var_dir = tempfile.mkdtemp(prefix="longctx-bench-")
    os.environ["VAR_DIR"] = var_dir
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["EVAL_CONCURRENCY"] = str(args.concurrency)
    # The per-host cap (default 16) would otherwise hold the engine below the ceiling's concurrency.
    os.environ["EVAL_PER_HOST_LIMIT"] = str(args.concurrency)
    os.environ["EVAL_STREAM"] = "false"
    os.environ["ALLOW_PRIVATE_ENDPOINTS"] = "true"  # the instant-answer server listens on 127.0.0.1
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    return var_dir


def _serve(conn: Any) -> None:
    """The instant-answer endpoint, in its own process so that it does not share the bench's GIL."""
    from tests.fake_openai import FakeOpenAI

    with FakeOpenAI(models=("fake-model",), max_model_len=32768) as server:
        conn.send(server.base_url)
        while (command := conn.recv()) != "stop":
            if command == "reset":
                server.max_inflight = 0
            conn.send(server.max_inflight)


class Endpoint:
    """Handle on the server process: ``base_url``, ``reset()`` and ``max_inflight()``."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child,), daemon=True)
        self._process.start()
        self.base_url: str = self._conn.recv()

    def _ask(self, command: str) -> int:
        self._conn.send(command)
        return self._conn.recv()

    def reset(self) -> None:
        self._ask("reset")

    def max_inflight(self) -> int:
        return self._ask("stats")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send("stop")
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.terminate()


def ceiling_run(base_url: str, bodies: list[dict[str, Any]], concurrency: int) -> tuple[float, list[Any]]:
    """The same bodies through a bare httpx loop; returns (seconds, decoded responses)."""
    import httpx

    url = base_url.rstrip("/") + "/chat/completions"
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with httpx.Client(limits=limits, timeout=60.0, trust_env=False) as client:

        def one(body: dict[str, Any]) -> Any:
            response = client.post(url, json=body, headers={"Accept": "application/json"})
            response.raise_for_status()
            return response.json()

        with ThreadPoolExecutor(max_workers=min(concurrency, len(bodies))) as pool:
            started = time.perf_counter()
            payloads = list(pool.map(one, bodies))
            elapsed = time.perf_counter() - started
    return elapsed, payloads


def main() -> int:
    args = parse_args()
    var_dir = configure(args)
    endpoint = Endpoint()  # before django.setup(): the child needs none of it
    try:
        return run_with_db(args, endpoint)
    finally:
        endpoint.close()
        shutil.rmtree(var_dir, ignore_errors=True)


def run_with_db(args: argparse.Namespace, endpoint: Endpoint) -> int:

    import django

    django.setup()

    from django.conf import settings
    from django.db import connection

    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        return bench(args, endpoint, settings, connection)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


def bench(args: argparse.Namespace, server: Endpoint, settings: Any, connection: Any) -> int:
    from django.db.models import F

    from evalworkers import runner
    from evalworkers.backends import GenerationResult
    from evalworkers.backends.wire import build_body
    from evalworkers.benchmark import CalibratedCounter
    from evalworkers.evaluation import outcome_of
    from evalworkers.targets import spec_for
    from evalworkers.targets.endpoint import DEFAULT_CHARS_PER_TOKEN

    def cell_spec(cell: Any) -> Any:
        return spec_for(cell.submission.version, cell.task, cell.length, api_mode=cell.submission.model.api_mode)
    from leaderboard.models import Cell, CellStatus, SampleResult, Submission
    from tests.factories import make_entry, make_submission, make_version

    n, conc, rounds = args.samples, args.concurrency, args.rounds
    version = make_version("bench", publish=True, lengths=[512], samples_per_cell=n, tasks=rounds)
    entry = make_entry(endpoint_url=server.base_url, api_model_name="fake-model")
    sub = make_submission(version=version, model=entry, api_key=None)
    cell_ids = runner.start(sub.pk).cell_ids  # the probe and the grid: not part of the measured path
    if len(cell_ids) != rounds:
        sub.refresh_from_db()
        print(f"start() gave {len(cell_ids)} cells, expected {rounds}: {sub.failure_reason}", file=sys.stderr)
        return 1
    cells = list(Cell.objects.filter(pk__in=cell_ids).select_related(
        "submission__model", "submission__version", "task").order_by("task__key"))
    # The ceiling's samples are sized with the probe's estimate; the engine calibrates its own per cell (three
    # one-token requests, part of its measured cost).
    counter = CalibratedCounter(sub.probe_result.get("chars_per_token") or DEFAULT_CHARS_PER_TOKEN)

    # Warm both paths' sockets/threads a little (not measured).
    warm_spec = cell_spec(cells[0])
    warm_bodies = [build_body(warm_spec.request(warm_spec.sample(i, counter)), model="fake-model",
                              api_mode="chat", stream=False) for i in range(min(n, 64))]
    ceiling_run(server.base_url, warm_bodies, conc)

    engine_times: list[float] = []
    ceiling_times: list[float] = []
    gen_s = body_s = 0.0
    engine_inflight = ceiling_inflight = 0
    last_samples: list[Any] = []
    last_payloads: list[Any] = []
    for cell in cells:
        spec = cell_spec(cell)
        # Ceiling: bodies built before timing (timed apart: that is the engine's generation cost).
        t0 = time.perf_counter()
        samples = [spec.sample(i, counter) for i in range(n)]
        t1 = time.perf_counter()
        bodies = [build_body(spec.request(s), model="fake-model", api_mode="chat", stream=False)
                  for s in samples]
        t2 = time.perf_counter()
        gen_s, body_s = t1 - t0, t2 - t1
        server.reset()
        elapsed, payloads = ceiling_run(server.base_url, bodies, conc)
        ceiling_times.append(elapsed)
        ceiling_inflight = max(ceiling_inflight, server.max_inflight())
        last_samples, last_payloads = samples, payloads

        # Engine: the whole run_cell (claim, generate, send, score, store, finish).
        server.reset()
        started = time.perf_counter()
        runner.run_cell(cell.pk)
        engine_times.append(time.perf_counter() - started)
        engine_inflight = max(engine_inflight, server.max_inflight())
        cell.refresh_from_db()
        stored = SampleResult.objects.filter(cell=cell).count()
        if cell.status != CellStatus.COMPLETED or stored != n:
            print(f"engine cell ended {cell.status} with {stored}/{n} samples: {cell.error}", file=sys.stderr)
            return 1

    # Breakdown of the engine's non-HTTP work per sample, measured apart (not in the timings above).
    t0 = time.perf_counter()
    results = [GenerationResult(text=p["choices"][0]["message"]["content"] or "",
                                prompt_tokens=p.get("usage", {}).get("prompt_tokens"),
                                completion_tokens=p.get("usage", {}).get("completion_tokens"), attempts=1)
               for p in last_payloads]
    outcomes = [outcome_of(i, s, r) for i, (s, r) in enumerate(zip(last_samples, results, strict=True))]
    score_s = time.perf_counter() - t0
    mean_score = sum(o.score or 0.0 for o in outcomes) / len(outcomes)

    # A throwaway cell on the same submission (its totals grow so the done <= total checks hold).
    Submission.objects.filter(pk=sub.pk).update(cells_total=F("cells_total") + 1,
                                                 samples_total=F("samples_total") + n)
    scratch = Cell.objects.create(submission=sub, task=cells[-1].task, length=cells[-1].length,
                                  method="bench-scratch", budget=1.0, samples_total=n,
                                  status=CellStatus.RUNNING)
    t0 = time.perf_counter()
    step = runner.FLUSH_EVERY_SAMPLES  # what run_cell's flush writes, one batch at a time
    for start in range(0, len(outcomes), step):
        runner._store(scratch, outcomes[start:start + step])
        Cell.objects.filter(pk=scratch.pk).update(samples_done=min(start + step, n), samples_errored=0)
    store_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    runner.finish_cell(scratch.pk)
    finish_s = time.perf_counter() - t0

    engine_s, ceiling_s = min(engine_times), min(ceiling_times)
    engine_rps, ceiling_rps = n / engine_s, n / ceiling_s
    ratio = engine_rps / ceiling_rps
    overhead_ms = (engine_s - ceiling_s) * 1000 / n
    per = {name: value * 1000 / n for name, value in
           (("generate", gen_s), ("build_body", body_s), ("score", score_s), ("db_store", store_s),
            ("finish_cell", finish_s))}
    cpu_ms = sum(per.values())
    vendor = connection.vendor
    ok = ratio >= TARGET_RATIO and overhead_ms < TARGET_OVERHEAD_MS

    print(f"samples {n}, concurrency {conc} (per-host limit {settings.EVAL_PER_HOST_LIMIT}), rounds {rounds}, "
          f"db {vendor}, {os.cpu_count()} CPUs, stream {settings.EVAL_STREAM}")
    print(f"ceiling (bare httpx): {ceiling_rps:8.1f} req/s  best {ceiling_s:.2f}s of "
          f"{', '.join(f'{t:.2f}' for t in ceiling_times)}  (server max in flight {ceiling_inflight})")
    print(f"engine  (run_cell):   {engine_rps:8.1f} req/s  best {engine_s:.2f}s of "
          f"{', '.join(f'{t:.2f}' for t in engine_times)}  (server max in flight {engine_inflight})")
    print(f"ratio {ratio:.3f} (target >= {TARGET_RATIO}), overhead {overhead_ms:.2f} ms/sample "
          f"(target < {TARGET_OVERHEAD_MS}), mean score {mean_score:.1f}")
    print("engine work measured apart, ms/sample (serial, on the calling thread): "
          + ", ".join(f"{k} {v:.3f}" for k, v in per.items()) + f"; total {cpu_ms:.2f}")
    print("PASS" if ok else "FAIL: below target")
    print(json.dumps({
        "engine_rps": round(engine_rps, 1), "ceiling_rps": round(ceiling_rps, 1), "ratio": round(ratio, 4),
        "overhead_ms_per_sample": round(overhead_ms, 3), "samples": n, "concurrency": conc, "db_vendor": vendor,
        "engine_s": round(engine_s, 3), "ceiling_s": round(ceiling_s, 3), "rounds": rounds,
        "breakdown_ms_per_sample": {k: round(v, 4) for k, v in per.items()},
        "target_ratio": TARGET_RATIO, "target_overhead_ms": TARGET_OVERHEAD_MS, "ok": ok,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Parity of our RULER tasks with lm-evaluation-harness's RULER port, on one endpoint.

Serves a local model with ``manage.py serve_model`` (the reference model unless ``--local`` says otherwise; or
uses ``--endpoint``), then, per length, runs lm-eval's RULER tasks (``lm_eval --model local-chat-completions``
with ``--apply_chat_template``: the prompt as one user message, the answer prefix as an assistant prefill) and our
engine (the version's task specs, chat mode, the same prefill) against that same endpoint, and prints per task
and length both scores with 95% Wilson intervals, the prompt tokens each sent, and whether the intervals overlap.

lm-eval is an optional dependency with its own environment, never installed by ``make``:

    python3 -m venv /work/lmeval-venv
    /work/lmeval-venv/bin/pip install 'lm_eval[api,ruler]==0.4.13' 'transformers<5.3'

Both sides size their prompts with the model's own tokenizer (``--tokenizer``, a folder with tokenizer.json).
lm-eval's RULER port generates its data itself; its essay tasks (niah_single_2/3, niah_multikey_1,
niah_multivalue, niah_multiquery) download Paul Graham's essays and its QA tasks SQuAD/HotpotQA, so offline only
niah_single_1, niah_multikey_2/3, vt, cwe and fwe can run. Ours generate everything locally.

    nice -n 10 .venv/bin/python bench/ruler_parity.py --tasks vt,cwe,fwe,niah_single_1 \\
        --lengths 1024,2048,4096 --samples 50

``serve_model`` runs the model in the dtype ``EVAL_LOCAL_DTYPE`` gives (``auto``: the checkpoint's bf16; on a CPU
without native bf16 instructions ``EVAL_LOCAL_DTYPE=float32`` is about 5x faster); the dtype and device served are
printed and recorded in the JSON line (``served``). Both sides always read the same served model.

A score is the mean over samples of the share of expected answers found (RULER's string_match_all); its
interval is Wilson's for that mean over n samples (exact for the one-answer tasks, an approximation where a
sample can earn partial credit). The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from evalworkers.backends import EndpointBackend, EndpointConfig  # noqa: E402
from evalworkers.benchmark import HFTokenCounter, RenderOptions  # noqa: E402
from evalworkers.evaluation import CellSpec, evaluate_samples  # noqa: E402

# Our task key -> lm-eval's task name (lm_eval/tasks/ruler/*.yaml). Only these run without a download.
LM_EVAL_TASKS = {
    "niah_single_1": "niah_single_1",
    "niah_multikey_2": "niah_multikey_2",
    "niah_multikey_3": "niah_multikey_3",
    "vt": "ruler_vt",
    "cwe": "ruler_cwe",
    "fwe": "ruler_fwe",
}
Z95 = 1.959963984540054


def wilson(mean: float, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval for a proportion ``mean`` (0-1) over ``n`` trials, in percent."""
    if n <= 0:
        return (0.0, 100.0)
    denom = 1 + z * z / n
    centre = (mean + z * z / (2 * n)) / denom
    half = z * math.sqrt(mean * (1 - mean) / n + z * z / (4 * n * n)) / denom
    return (round(100 * max(0.0, centre - half), 1), round(100 * min(1.0, centre + half), 1))


@dataclass
class Side:
    score: float  # 0-100
    n: int
    prompt_tokens: float | None  # mean tokens of the prompt text (answer prefix included, chat markup not)
    served_tokens: float | None = None  # mean prompt tokens the server reported (chat markup included; ours)

    @property
    def ci(self) -> tuple[float, float]:
        return wilson(self.score / 100, self.n)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="vt,cwe,fwe,niah_single_1", help="our task keys (see LM_EVAL_TASKS)")
    parser.add_argument("--lengths", default="1024,2048,4096")
    parser.add_argument("--samples", type=int, default=50, help="samples per task and length on each side")
    parser.add_argument("--version", default="v2", help="slug in specs/versions.json whose task specs we run")
    parser.add_argument("--local", default="reference", help="what serve_model serves (default: reference)")
    parser.add_argument("--endpoint", help="use this OpenAI-compatible base URL instead of serving one")
    parser.add_argument("--model", default="smollm2-135m-instruct", help="the served model name")
    parser.add_argument("--port", type=int, default=8011)
    parser.add_argument("--tokenizer", default=str(ROOT / "var/models/smollm2-135m-instruct"))
    parser.add_argument("--lm-eval", default="/work/lmeval-venv/bin/lm_eval", help="lm_eval executable")
    parser.add_argument("--sides", default="ours,lm_eval", help="which sides to run")
    parser.add_argument("--out", help="folder for lm-eval's logs and our per-sample records (default: temp)")
    args = parser.parse_args()
    args.tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in args.tasks if t not in LM_EVAL_TASKS]
    if unknown:
        parser.error(f"--tasks: {', '.join(unknown)} have no offline lm-eval counterpart; "
                     f"choose from {', '.join(LM_EVAL_TASKS)}")
    args.lengths = [int(x) for x in args.lengths.split(",")]
    args.sides = {s.strip() for s in args.sides.split(",")}
    return args


def version_spec(slug: str) -> dict[str, Any]:
    data = json.loads((ROOT / "specs/versions.json").read_text())
    return next(v for v in data["versions"] if v["slug"] == slug)


def wait_for(url: str, proc: subprocess.Popen | None, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"serve_model exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/models", timeout=5):
                return
        except OSError:
            time.sleep(2)
    raise SystemExit(f"{url} did not answer within {timeout_s:.0f} s")


def served_model(base_url: str, name: str) -> dict[str, Any]:
    """What the endpoint's /models says of the model (serve_model adds its dtype, device and KV plan)."""
    with urllib.request.urlopen(base_url + "/models", timeout=30) as reply:
        listed = json.load(reply).get("data", [])
    return next((m for m in listed if m.get("id") == name), {"id": name})


def run_ours(args: argparse.Namespace, base_url: str, out: Path, length: int) -> dict[tuple[str, int], Side]:
    spec = version_spec(args.version)
    tasks = {t["key"]: t for t in spec["tasks"]}
    counter = HFTokenCounter.from_file(Path(args.tokenizer) / "tokenizer.json")
    options = RenderOptions.from_version_params(spec.get("params"))
    config = EndpointConfig(base_url=base_url, model=args.model, concurrency=1, request_timeout_s=900,
                            deadline_s=3600, allow_private=True)
    results: dict[tuple[str, int], Side] = {}
    with EndpointBackend(config) as backend, (out / "ours.jsonl").open("a") as log:
        for key in args.tasks:
            task = tasks[key]
            cell = CellSpec(seed=spec["seed"], task_key=key, task_type=task["type"], params=task.get("params", {}),
                            length=length, max_new_tokens=task["max_new_tokens"], samples=args.samples,
                            options=options)
            started = time.monotonic()
            outcomes = evaluate_samples(cell, backend, counter, range(args.samples), concurrency=1)
            scored = [o for o in outcomes if o.score is not None]
            served = [o.prompt_tokens for o in scored if o.prompt_tokens]
            sized = [o.target_prompt_tokens for o in scored if o.target_prompt_tokens]
            for o in outcomes:
                log.write(json.dumps({"task": key, "length": length, "index": o.index, "score": o.score,
                                      "prediction": o.prediction, "expected": o.expected, "error": o.error,
                                      "prompt_tokens": o.prompt_tokens}) + "\n")
            results[(key, length)] = Side(
                score=sum(o.score for o in scored) / len(scored) if scored else 0.0, n=len(scored),
                prompt_tokens=sum(sized) / len(sized) if sized else None,
                served_tokens=sum(served) / len(served) if served else None)
            print(f"ours    {key:<16} {length:>6}  {results[(key, length)].score:6.1f}  n={len(scored)}  "
                  f"({time.monotonic() - started:.0f} s)", flush=True)
    return results


def run_lm_eval(args: argparse.Namespace, base_url: str, out: Path, length: int) -> dict[tuple[str, int], Side]:
    results: dict[tuple[str, int], Side] = {}
    names = ",".join(LM_EVAL_TASKS[k] for k in args.tasks)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    # One run per length: lm-eval's --limit takes the first docs, and its RULER docs are ordered by length.
    where = out / f"lm_eval_{length}"
    model_args = (f"model={args.model},base_url={base_url}/chat/completions,tokenizer={args.tokenizer},"
                  "tokenizer_backend=huggingface,tokenized_requests=False,num_concurrent=1,max_retries=3,"
                  "timeout=900")
    command = [args.lm_eval, "--model", "local-chat-completions", "--model_args", model_args,
               "--tasks", names, "--apply_chat_template", "--limit", str(args.samples),
               "--metadata", json.dumps({"max_seq_lengths": [length], "tokenizer": args.tokenizer}),
               "--log_samples", "--output_path", str(where)]
    started = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    (out / f"lm_eval_{length}.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        print(f"lm_eval failed at {length} (exit {done.returncode}); see {out}/lm_eval_{length}.log:\n"
              + (done.stderr or done.stdout)[-2000:], flush=True)
        return results
    for key in args.tasks:
        records = [json.loads(line) for f in sorted(where.rglob(f"samples_{LM_EVAL_TASKS[key]}_*.jsonl"))
                   for line in f.read_text().splitlines() if line.strip()]
        scores = [r[str(length)] for r in records if r.get(str(length), -1) != -1]
        # lm-eval's doc "length" is the tokens it counted for the prompt plus the tokens to generate.
        generate = {"vt": 30, "cwe": 120, "fwe": 50}.get(key, 128)
        lengths = [r["doc"]["length"] - generate for r in records]
        results[(key, length)] = Side(
            score=100 * sum(scores) / len(scores) if scores else 0.0, n=len(scores),
            prompt_tokens=sum(lengths) / len(lengths) if lengths else None)
        print(f"lm_eval {key:<16} {length:>6}  {results[(key, length)].score:6.1f}  n={len(scores)}  "
              f"({time.monotonic() - started:.0f} s for the run)", flush=True)
    return results


def main() -> None:
    args = parse_args()
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="ruler-parity-"))
    out.mkdir(parents=True, exist_ok=True)
    server = None
    base_url = args.endpoint or f"http://127.0.0.1:{args.port}/v1"
    if not args.endpoint:
        command = [sys.executable, str(ROOT / "manage.py"), "serve_model", "--local", args.local, "--port",
                   str(args.port), "--served-name", args.model]
        server = subprocess.Popen(command, cwd=ROOT, start_new_session=True)
    try:
        wait_for(base_url, server)
        served = served_model(base_url, args.model)
        print(f"served model: {json.dumps(served)}", flush=True)
        ours: dict[tuple[str, int], Side] = {}
        theirs: dict[tuple[str, int], Side] = {}
        lm_eval = "lm_eval" in args.sides and shutil.which(args.lm_eval)
        # Length by length, both sides, so that a run cut short still leaves comparable cells.
        for length in args.lengths:
            if "ours" in args.sides:
                ours.update(run_ours(args, base_url, out, length))
            if lm_eval:
                theirs.update(run_lm_eval(args, base_url, out, length))
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    rows = []
    print(f"\n{'task':<16} {'length':>6}  {'ours (95% Wilson)':>24} {'tokens':>7}  "
          f"{'lm-eval RULER (95% Wilson)':>27} {'tokens':>7}  overlap")
    for length in args.lengths:
        for key in args.tasks:
            a, b = ours.get((key, length)), theirs.get((key, length))
            row: dict[str, Any] = {"task": key, "length": length}
            for name, side in (("ours", a), ("lm_eval", b)):
                if side is not None:
                    row[name] = {"score": round(side.score, 1), "ci": list(side.ci), "n": side.n,
                                 "prompt_tokens": None if side.prompt_tokens is None else round(side.prompt_tokens)}
                    if side.served_tokens is not None:
                        row[name]["served_prompt_tokens"] = round(side.served_tokens)
            overlap = None if a is None or b is None else a.ci[0] <= b.ci[1] and b.ci[0] <= a.ci[1]
            row["overlap"] = overlap

            def cell(side: Side | None) -> str:
                if side is None:
                    return f"{'-':>24} {'-':>7}"
                tokens = "-" if side.prompt_tokens is None else f"{side.prompt_tokens:.0f}"
                return f"{side.score:6.1f} [{side.ci[0]:5.1f}, {side.ci[1]:5.1f}] n={side.n:<3} {tokens:>7}"

            print(f"{key:<16} {length:>6}  {cell(a)}  {cell(b):>35}  {'-' if overlap is None else overlap}")
            rows.append(row)
    compared = [r for r in rows if r["overlap"] is not None]
    print(f"\nper-sample records and lm-eval logs: {out}")
    print(json.dumps({"version": args.version, "samples": args.samples, "served": served, "rows": rows,
                      "cells_compared": len(compared), "cells_overlapping": sum(r["overlap"] for r in compared)}))


if __name__ == "__main__":
    main()

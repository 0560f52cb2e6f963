"""Sample generation speed and length accuracy, against RULER's way of sizing (binary search on the haystack
size with the whole prompt re-tokenized at every step), in the same run and with the same tokenizer.

    python bench/sample_generation.py [--samples 5] [--baseline-samples 2] [--long-samples 2] [--tokenizer PATH]

Prints a table and, as its last line, JSON with ms_per_sample_128k, baseline_ms_per_sample_128k,
speedup_vs_search and max_len_error_pct (how far below the target a prompt ended, in % of the length).

Past 128K (256K, 512K, 1M) RULER's search is not run (it re-tokenizes the whole prompt some 20 times); instead each
length reports the time to build a sample, the time of one tokenization of its finished prompt (``count`` of
``as_completion_prompt()``, timed right after each build), the median of their ratios, and the peak of the Python
heap while one sample is built (tracemalloc: it does not see the tokenizer's own Rust allocations; the process's
peak resident size is printed at the end). At 1M the families added for long contexts (mrcr, needle_threading,
non_literal_needle) are measured the same way.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evalworkers.benchmark import HFTokenCounter, generate_sample  # noqa: E402
from evalworkers.benchmark.generate import _plan, _render  # noqa: E402
from evalworkers.benchmark.haystacks import prose_units  # noqa: E402
from evalworkers.benchmark.rng import Rng, sample_seed  # noqa: E402

LENGTHS = (4096, 32768, 131072)
LONG_LENGTHS = (262144, 524288, 1048576)
LONG_NAMES = {262144: "256k", 524288: "512k", 1048576: "1m"}
FAMILIES = {
    "mrcr": {"task_key": "mrcr_4", "task_type": "mrcr", "params": {"num_needles": 4}},
    "needle_threading": {"task_key": "thread_multi", "task_type": "needle_threading",
                         "params": {"num_threads": 4, "thread_length": 4}},
    "non_literal_needle": {"task_key": "nolima", "task_type": "non_literal_needle", "params": {}},
}
TASK = {"task_key": "niah_single_2", "task_type": "niah_single",
        "params": {"haystack": "prose", "key_type": "words", "value_type": "numbers"}}
MAX_NEW = 128


def ours(counter: HFTokenCounter, length: int, index: int) -> tuple[float, int, int]:
    t0 = time.perf_counter()
    sample = generate_sample(seed=1, length=length, index=index, counter=counter, max_new_tokens=MAX_NEW, **TASK)
    ms = (time.perf_counter() - t0) * 1000
    return ms, length - MAX_NEW - sample.prompt_tokens, sample.metadata["tokenize_passes"]


def baseline(counter: HFTokenCounter, length: int, index: int) -> tuple[float, int, int]:
    """RULER's approach: pick the haystack size by bisection, re-tokenizing the whole prompt at each step."""
    t0 = time.perf_counter()
    _, plan = _plan(1, TASK["task_key"], TASK["task_type"], TASK["params"], length, index, counter)
    render = _render(plan, plan.answer_prefix, None)
    rng = Rng(sample_seed(1, TASK["task_key"], TASK["params"], length, index)).child("haystack")
    units = prose_units(rng)(length // 4)  # more sentences than can fit (a sentence is > 4 tokens)
    needle = plan.builder._inserts[0]
    target = length - MAX_NEW

    def prompt(n: int) -> str:
        pos = round(needle.depth_percent / 100 * n)
        return render("".join(units[:pos]) + needle.sep + needle.text + "".join(units[pos:n])).replace(
            plan.separators[0] + " ", plan.separators[0], 1)

    lo, hi, steps = 0, len(units), 0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        steps += 1
        if counter.count(prompt(mid)) <= target:
            lo = mid
        else:
            hi = mid - 1
    total = counter.count(prompt(lo))
    ms = (time.perf_counter() - t0) * 1000
    return ms, target - total, steps + 1


def peak_mb(counter: HFTokenCounter, length: int, task: dict | None = None) -> float:
    tracemalloc.start()
    generate_sample(seed=1, length=length, index=999, counter=counter, max_new_tokens=MAX_NEW, **(task or TASK))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def long_figures(counter: HFTokenCounter, length: int, samples: int, task: dict | None = None) -> dict[str, float]:
    """Build time and the time of one tokenization of that sample's finished prompt, measured back to back for each
    of ``samples`` samples (after one cold sample), so that a change in the machine's load touches both; the
    median of their ratios, the Python heap's peak, and how far below the target a prompt ended."""
    task = task or TASK
    generate_sample(seed=1, length=length, index=10_000, counter=counter, max_new_tokens=MAX_NEW, **task)
    builds, tokenizations, ratios, errors = [], [], [], []
    for i in range(samples):
        t0 = time.perf_counter()
        sample = generate_sample(seed=1, length=length, index=i, counter=counter, max_new_tokens=MAX_NEW, **task)
        build_ms = (time.perf_counter() - t0) * 1000
        text = sample.as_completion_prompt()
        t0 = time.perf_counter()
        measured = counter.count(text)
        tokenize_ms = (time.perf_counter() - t0) * 1000
        assert measured == sample.prompt_tokens, (measured, sample.prompt_tokens)
        builds.append(build_ms)
        tokenizations.append(tokenize_ms)
        ratios.append(build_ms / tokenize_ms)
        errors.append(length - MAX_NEW - sample.prompt_tokens)
    return {"ms": statistics.mean(builds), "tokenize_ms": statistics.mean(tokenizations),
            "ratio": statistics.median(ratios), "peak_mb": peak_mb(counter, length, task), "err": max(errors),
            "prompt_mb": len(text.encode("utf-8")) / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--baseline-samples", type=int, default=2)
    parser.add_argument("--long-samples", type=int, default=2, help="samples per length past 128K (0: skip them)")
    parser.add_argument("--tokenizer", default=str(ROOT / "tests" / "data" / "prose-bpe-8k.json"))
    args = parser.parse_args()
    counter = HFTokenCounter.from_file(args.tokenizer)
    results: dict[int, dict[str, float]] = {}
    print(f"task niah_single_2 (prose haystack), byte-level BPE from {Path(args.tokenizer).name}")
    print(f"{'length':>7} | {'ours ms':>8} {'cold ms':>8} {'verify ms':>9} {'err tok':>7} {'passes':>6} | "
          f"{'search ms':>9} {'err tok':>7} {'steps':>5} | {'speedup':>7} | {'peak MB':>7}")
    for length in LENGTHS:
        cold_ms, _, _ = ours(counter, length, 10_000)  # first sample at this length: empty piece cache
        runs = [ours(counter, length, i) for i in range(args.samples)]
        base = [baseline(counter, length, i) for i in range(args.baseline_samples)]
        probe = generate_sample(seed=1, length=length, index=0, counter=counter, max_new_tokens=MAX_NEW, **TASK)
        text = probe.as_completion_prompt()
        t0 = time.perf_counter()
        counter.count(text)
        verify_ms = (time.perf_counter() - t0) * 1000
        ms = statistics.mean(r[0] for r in runs)
        base_ms = statistics.mean(b[0] for b in base)
        err = max(r[1] for r in runs)
        base_err = max(b[1] for b in base)
        mem = peak_mb(counter, length)
        results[length] = {"ms": ms, "cold_ms": cold_ms, "verify_ms": verify_ms, "err": err,
                           "err_pct": 100 * err / length, "base_ms": base_ms, "base_err": base_err,
                           "base_err_pct": 100 * base_err / length, "peak_mb": mem,
                           "passes": max(r[2] for r in runs)}
        print(f"{length:>7} | {ms:>8.1f} {cold_ms:>8.1f} {verify_ms:>9.1f} {err:>7} {max(r[2] for r in runs):>6} | "
              f"{base_ms:>9.1f} {base_err:>7} {max(b[2] for b in base):>5} | {base_ms / ms:>6.1f}x | {mem:>7.1f}")
    long: dict[str, dict[str, float]] = {}
    if args.long_samples > 0:
        print(f"\n{'length':>7} {'task':>18} | {'build ms':>9} {'tokenize ms':>11} {'ratio':>5} | "
              f"{'err tok':>7} {'prompt MB':>9} {'peak MB':>7}")
        runs = [(n, "niah_single_2", None) for n in LONG_LENGTHS]
        runs += [(LONG_LENGTHS[-1], name, task) for name, task in FAMILIES.items()]
        for length, name, task in runs:
            r = long_figures(counter, length, args.long_samples, task)
            long[f"{name}@{LONG_NAMES[length]}"] = r
            print(f"{length:>7} {name:>18} | {r['ms']:>9.1f} {r['tokenize_ms']:>11.1f} {r['ratio']:>5.2f} | "
                  f"{r['err']:>7} {r['prompt_mb']:>9.2f} {r['peak_mb']:>7.1f}")
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak resident size of this process: {rss:.0f} MB")
    figures: dict[str, float] = {}
    for key, r in long.items():
        name, size = key.split("@")
        tag = size if name == "niah_single_2" else f"{name}_{size}"
        figures[f"ms_per_sample_{tag}"] = round(r["ms"], 1)
        figures[f"tokenize_ms_{tag}"] = round(r["tokenize_ms"], 1)
        figures[f"build_over_tokenize_{tag}"] = round(r["ratio"], 2)
        figures[f"peak_mb_{tag}"] = round(r["peak_mb"], 1)
        figures[f"len_error_tokens_{tag}"] = int(r["err"])
    r128 = results[131072]
    print(json.dumps({
        "ms_per_sample_4k": round(results[4096]["ms"], 1),
        "ms_per_sample_32k": round(results[32768]["ms"], 1),
        "ms_per_sample_128k": round(r128["ms"], 1),
        "cold_ms_per_sample_128k": round(r128["cold_ms"], 1),
        "verify_tokenization_ms_128k": round(r128["verify_ms"], 1),
        "baseline_ms_per_sample_128k": round(r128["base_ms"], 1),
        "speedup_vs_search": round(r128["base_ms"] / r128["ms"], 1),
        "max_len_error_pct": round(max(r["err_pct"] for r in results.values()), 4),
        "max_len_error_tokens": max(int(r["err"]) for r in results.values()),
        "baseline_max_len_error_pct": round(max(r["base_err_pct"] for r in results.values()), 4),
        "peak_mb_32k": round(results[32768]["peak_mb"], 1),
        "peak_mb_128k": round(r128["peak_mb"], 1),
        **figures,
    }))


if __name__ == "__main__":
    main()

"""Efficiency methods by name: what each one does to the KV cache at a given budget, in one table.

A budget is the fraction of the full KV cache's bytes that a method keeps. Each `Method` below states, next to its
name, how a budget maps to the method's own knob (`knob`, see `budgets.py`) and which budgets it can honour
(`budgets`: an interval or a set of points, with the reason and its source). Every caller (the submission form,
a version's checks in the admin, the worker's pre-flight, the evaluate command) asks `check_budget`, so a pair
this table refuses is never run or shown. Methods whose kvpress implementation masks keys instead of freeing them
are marked ``physical=False``: their memory figure stays the full cache's and their kept fraction is logical.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from evalworkers.kv.budgets import (
    NO_KNOB,
    QUANT_BASE_BITS,
    BudgetRule,
    Knob,
    bit_width,
    evicted_tokens,
    percent,
    pruned_key_channels,
    streaming_heads,
)


class MethodError(ValueError):
    """An unknown method, a budget it cannot honour, or files it needs that are not configured."""


@dataclass(frozen=True)
class Method:
    name: str
    label: str
    summary: str
    knob: Knob  # budget -> the method's own setting
    budgets: BudgetRule  # which budgets it honours, why, and the points versions offer it at
    physical: bool = True  # False: kvpress masks keys, the cache keeps its full size
    needs_eager: bool = False  # needs attention weights (eager attention)
    needs_files: str = ""  # sub-folder of the KV files folder this method reads; "" when none
    quantized: bool = False
    logical_from: str = "press"  # logical methods: "press" (its compression_ratio) or "key_channels" (the cache)


@dataclass(frozen=True)
class KVPlan:
    """What the local backend does for one (method, budget): a press, a quantized cache, or nothing."""

    method: str
    budget: float
    press: Any = None
    quant_bits: int | None = None
    physical: bool = True
    needs_eager: bool = False
    logical_from: str = "press"

    @property
    def is_full(self) -> bool:
        return self.press is None and self.quant_bits is None


# Token eviction through kvpress's ScorerPress: compression_ratio = 1 - b must lie in [0, 1) (scorer_press.py), and
# n tokens keep max(1, int(n * b)) per head (kvpress.utils.compute_n_kept): every b > 0 keeps something of every head.
EVICTS_ALL = "budget 0 evicts every token (kvpress's compression_ratio 1.0, which its presses refuse)."
SCORER = "kvpress/presses/scorer_press.py (compression_ratio in [0, 1)); "
FULL_ONLY = BudgetRule(1.0, False, "the full cache is the uncompressed reference: budget 1.0 only.", "", points=())

METHODS: dict[str, Method] = {m.name: m for m in (
    Method("full", "Full cache", "No compression: the reference every budget is compared with.", NO_KNOB, FULL_ONLY),
    Method("streaming_llm", "StreamingLLM", "Keeps the first (sink) tokens and a recent window.",
           evicted_tokens("middle tokens"),
           BudgetRule(0.0, True, EVICTS_ALL,
                      SCORER + "StreamingLLM (arXiv:2309.17453) keeps 4 attention-sink tokens and a recent window "
                      "(kvpress StreamingLLMPress, n_sink=4).",
                      min_kept_tokens=5,
                      tokens_why="it keeps the 4 sink tokens first, so fewer than 5 kept tokens leave no recent "
                                 "window")),
    Method("snapkv", "SnapKV", "Keeps tokens the last window's queries attend to (pooled).", evicted_tokens(),
           BudgetRule(0.0, True, EVICTS_ALL, SCORER + "SnapKV (arXiv:2404.14469): 64-token observation window, "
                      "pooling kernel 5; the window itself is scored highest and kept first.")),
    Method("pyramidkv", "PyramidKV", "SnapKV with larger budgets in lower layers, smaller in higher ones.",
           evicted_tokens(how="on average over layers"),
           BudgetRule(0.0, True, EVICTS_ALL,
                      "PyramidKV (arXiv:2406.02069); kvpress/presses/pyramidkv_press.py get_layer_budget: layer "
                      "budgets fall linearly from the bottom layer to b*n/beta (beta=20) at the top and average b*n, "
                      "and each layer keeps at least the 64-token window; when b*n < beta*64 = 1,280 tokens kvpress "
                      "uses SnapKV's uniform b*n per layer (floored at 1), so no layer is ever emptied.")),
    Method("tova", "TOVA", "Keeps tokens the last query attends to most, averaged over heads.", evicted_tokens(),
           BudgetRule(0.0, True, EVICTS_ALL, SCORER + "TOVA (arXiv:2401.06104); the last token is always kept.")),
    Method("knorm", "Knorm", "Keeps keys with the smallest L2 norm.", evicted_tokens(),
           BudgetRule(0.0, True, EVICTS_ALL, SCORER + "Knorm (arXiv:2406.11430).")),
    Method("observed_attention", "H2O (observed attention)",
           "Keeps heavy hitters by the attention they received during prefill.", evicted_tokens(),
           BudgetRule(0.0, True, EVICTS_ALL, SCORER + "H2O (arXiv:2306.14048); needs eager attention weights."),
           needs_eager=True),
    Method("expected_attention", "Expected attention",
           "Keeps keys future queries are expected to attend to (query statistics).", evicted_tokens(),
           BudgetRule(0.0, True, EVICTS_ALL, SCORER + "kvpress/presses/expected_attention_press.py (the first "
                      "4 sink tokens are never scored out).")),
    Method("keydiff", "KeyDiff", "Keeps keys least similar to the mean key.", evicted_tokens(),
           BudgetRule(0.0, True, EVICTS_ALL, SCORER + "KeyDiff (arXiv:2504.15364).")),
    Method("chunkkv", "ChunkKV", "SnapKV scores pooled over chunks of 20 tokens, kept or dropped whole.",
           evicted_tokens("20-token chunks"),
           BudgetRule(0.0, True, EVICTS_ALL,
                      "ChunkKV (arXiv:2502.00299); kvpress/presses/chunkkv_press.py keeps "
                      "max(1, int(chunks * b)) whole chunks of chunk_length=20 tokens.",
                      min_kept_tokens=20,
                      tokens_why="it keeps whole 20-token chunks and never fewer than one, so a budget keeping "
                                 "fewer than 20 tokens would keep more than it says")),
    Method("kv_quant", "KV quantization (quanto)",
           "Keys and values quantized per channel (int4 at 0.25, int2 at 0.125), recent 128 tokens in 16-bit.",
           bit_width(),
           BudgetRule(2 / QUANT_BASE_BITS, False,
                      "the budget is the bit width over 16, and quanto packs int4 or int2 only (0.25 or 0.125).",
                      "transformers QuantizedCache, quanto backend (nbits in {2, 4}, q_group_size 64, "
                      "residual_length 128); 2-bit KV caches as in KIVI (arXiv:2402.02750).",
                      points=(0.25, 0.125), only=True),
           quantized=True),
    Method("adakv_snapkv", "AdaKV + SnapKV", "Head-wise budgets; kvpress masks the evicted keys (logical only).",
           evicted_tokens(how="across heads"),
           BudgetRule(0.0, True, EVICTS_ALL,
                      "AdaKV (arXiv:2407.11550); kvpress/presses/adakv_press.py: alpha_safeguard=0.2 keeps at least "
                      "max(1, int(0.2 * n * b)) tokens in every head."),
           physical=False),
    Method("think", "ThinK", "Prunes key channels; kvpress zeroes them without freeing memory (logical only).",
           pruned_key_channels(),
           BudgetRule(0.5, True,
                      "budget b prunes 2(1 - b) of the key channels (keys are half of the KV bytes), so 0.5 prunes "
                      "every key channel and nothing below 0.5 exists.",
                      "ThinK (arXiv:2407.21018) prunes about 40-60% of key channels (budgets 0.8-0.7); "
                      "kvpress/presses/think_press.py: key_channel_compression_ratio, compression_ratio = ratio / 2.",
                      points=(0.8, 0.75, 0.7)),
           physical=False, logical_from="key_channels"),
    Method("duo_attention", "DuoAttention",
           "Streaming heads keep sinks and a recent window; kvpress masks the rest (logical only).",
           streaming_heads(),
           BudgetRule(0.0, True,
                      "budget 0 makes every head a streaming head: no head would keep the whole context.",
                      "DuoAttention (arXiv:2410.10819) keeps a fraction of heads as full retrieval heads (memory "
                      "cut by up to 2.55x for MHA, 1.67x for GQA models); kvpress/presses/duo_attention_press.py: "
                      "head_compression_ratio = fraction of heads made streaming (rounded to whole heads).",
                      points=(0.5, 0.25)),
           physical=False, needs_files="duo_attention"),
    Method("qfilter", "Q-Filters", "Keys scored against learned query filters.", evicted_tokens(),
           BudgetRule(0.0, True, EVICTS_ALL, SCORER + "Q-Filters (arXiv:2503.02812)."),
           needs_files="q_filters"),
)}


def _press_factories() -> dict[str, Callable[[float, Path | None, str], Any]]:
    """Each method's press from its own knob's value (`Method.knob.value(budget)`), the files folder and model."""
    import kvpress  # imported late: importing kvpress patches attention functions and pulls in torch

    def snap(ratio: float) -> Any:
        return kvpress.SnapKVPress(compression_ratio=ratio)

    return {
        "streaming_llm": lambda r, d, m: kvpress.StreamingLLMPress(compression_ratio=r),
        "snapkv": lambda r, d, m: snap(r),
        "pyramidkv": lambda r, d, m: kvpress.PyramidKVPress(compression_ratio=r),
        "tova": lambda r, d, m: kvpress.TOVAPress(compression_ratio=r),
        "knorm": lambda r, d, m: kvpress.KnormPress(compression_ratio=r),
        "observed_attention": lambda r, d, m: kvpress.ObservedAttentionPress(compression_ratio=r),
        "expected_attention": lambda r, d, m: kvpress.ExpectedAttentionPress(compression_ratio=r),
        "keydiff": lambda r, d, m: kvpress.KeyDiffPress(compression_ratio=r),
        "chunkkv": lambda r, d, m: kvpress.ChunkKVPress(press=snap(r), chunk_length=20),
        "adakv_snapkv": lambda r, d, m: kvpress.AdaKVPress(press=snap(r)),
        "think": lambda p, d, m: kvpress.ThinKPress(key_channel_compression_ratio=p),
        "duo_attention": _duo_attention_press,
        "qfilter": _qfilter_press,
    }


def files_for(method: Method, files_dir: Path | None, model_name: str) -> Path:
    """The folder holding a method's files for a model, or a MethodError saying where to put them."""
    base = model_name.rstrip("/").split("/")[-1]
    if files_dir is None:
        raise MethodError(f"{method.name} needs files that this deployment has not configured: set KV_FILES_DIR "
                          f"and put them in KV_FILES_DIR/{method.needs_files}/{base}/.")
    folder = Path(files_dir) / method.needs_files / base
    if not folder.is_dir():
        raise MethodError(f"{method.name} needs its files for {base} in {folder}; that folder does not exist.")
    return folder


def _duo_attention_press(head_ratio: float, files_dir: Path | None, model_name: str) -> Any:
    import numpy as np
    from kvpress import DuoAttentionPress

    folder = files_for(METHODS["duo_attention"], files_dir, model_name)

    class LocalDuoAttentionPress(DuoAttentionPress):
        @staticmethod
        def load_attention_pattern(model: Any) -> tuple[int, int, Any]:
            # The same clipping as kvpress's loader, from a local copy of the DuoAttention repo's pattern folder.
            config = json.loads((folder / "config.json").read_text())
            scores = np.loadtxt(folder / "full_attention_heads.tsv", dtype=float, delimiter="\t", ndmin=2)
            scores = np.clip(scores, 0, 1)
            return config["sink_size"], config["recent_size"], scores

    return LocalDuoAttentionPress(head_compression_ratio=head_ratio)


def _qfilter_press(ratio: float, files_dir: Path | None, model_name: str) -> Any:
    from kvpress import QFilterPress
    from kvpress.presses.qfilter_press import QFilters

    folder = files_for(METHODS["qfilter"], files_dir, model_name)

    class LocalQFilterPress(QFilterPress):
        @staticmethod
        def load_q_filters(model_name: str) -> Any:
            return QFilters.from_pretrained(str(folder)).q_filters

    return LocalQFilterPress(compression_ratio=ratio)


def method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise MethodError(f"unknown KV method {name!r}; known: {', '.join(METHODS)}") from None


def check_budget(name: str, budget: float, *, context_tokens: int | None = None) -> None:
    """Refuse a budget the method cannot honour, with the method's reason and the budgets it can; with
    `context_tokens` (the shortest context it will compress), also a budget that keeps too few of its tokens."""
    m = method(name)
    if not (isinstance(budget, (int, float)) and math.isfinite(budget) and 0 < budget <= 1):
        raise MethodError(f"budget {budget!r} is not a fraction in (0, 1]")
    rule = m.budgets
    if name == "full" and budget != 1.0:
        raise MethodError("the full cache has budget 1.0 only")
    if not rule.contains(budget):
        raise MethodError(f"{name} cannot run at budget {budget:g} ({m.knob.words(budget)}): {rule.why} "
                          f"It honours budgets in {rule.interval()}; versions offer it at "
                          f"{', '.join(f'{p:g}' for p in rule.points)}")
    if context_tokens is not None and budget < 1.0 and not rule.fits(budget, context_tokens):
        raise MethodError(f"{name} at budget {budget:g} keeps {int(context_tokens * budget)} of a "
                          f"{context_tokens:,}-token context: {rule.tokens_why}; it needs at least "
                          f"{rule.min_kept_tokens} kept tokens")


def setting(name: str, budget: float) -> str:
    """The method's own setting at `budget`, in words ("40% of key channels pruned"); "" for an unknown name."""
    m = METHODS.get(name)
    if m is None:
        return ""
    return "no compression" if budget >= 1.0 else m.knob.words(budget)


def point_label(name: str, budget: float) -> str:
    """How pages name a (method, budget) point: the method, its own setting and the budget, e.g.
    "ThinK, 40% of key channels pruned, 80% of KV bytes". The full cache is just "Full cache"; a name this
    registry does not know (an imported row) keeps its name and budget."""
    m = METHODS.get(name)
    if m is None:
        return f"{name} {percent(budget)}"
    if name == "full":
        return m.label
    kept = "of KV bytes" if m.physical else "of KV bytes, logically"
    return f"{m.label}, {setting(name, budget)}, {percent(budget)} {kept}"


def offered_points(methods: Sequence[str], budgets: Sequence[float],
                   per_method: Mapping[str, Sequence[float]] | None = None, *,
                   context_tokens: int | None = None) -> tuple[dict[str, list[float]], list[tuple[str, float, str]]]:
    """What a version offers: for each compressing method, its own budgets (`per_method`) or else the shared
    `budgets`, below 1.0, keeping only those `check_budget` accepts at `context_tokens` (the version's shortest
    length). Returns ({method: budgets}, [(method, budget, why refused)])."""
    per_method = per_method or {}
    offered: dict[str, list[float]] = {}
    refused: list[tuple[str, float, str]] = []
    for name in methods:
        if name == "full":
            continue
        kept = []
        for budget in per_method.get(name, budgets):
            budget = float(budget)
            if budget >= 1.0:
                continue
            try:
                check_budget(name, budget, context_tokens=context_tokens)
            except MethodError as exc:
                refused.append((name, budget, str(exc)))
                continue
            kept.append(budget)
        offered[name] = kept
    return offered, refused


class GridPoint(NamedTuple):
    """One (KV method, budget) point of a submission's grid; budget is a fraction of the full cache in (0, 1]."""

    method: str
    budget: float


FULL_CACHE = GridPoint("full", 1.0)


def grid(methods: Sequence[str], budgets: Sequence[float], *, offered: Mapping[str, Sequence[float]] | None = None,
         refused: Sequence[tuple[str, float, str]] = ()) -> list[GridPoint]:
    """The one grid of a submission: the full cache (always, as the baseline), then each compressing method of
    ``methods`` at each of ``budgets``. ``offered`` (a version's ``kv_offered()``) keeps what the version offers,
    with ``requested_points``'s MethodError for the rest; None (``manage.py evaluate`` on the operator's own
    machine) runs every given method at every given budget. "full" in ``methods`` adds nothing."""
    names = [m for m in methods if m != FULL_CACHE.method]
    if offered is None:
        return [FULL_CACHE, *(GridPoint(m, float(b)) for m in names for b in budgets)]
    return [FULL_CACHE, *(GridPoint(m, b) for m, b in requested_points(names, budgets, offered, refused))]


def requested_points(methods: Sequence[str], budgets: Sequence[float], offered: Mapping[str, Sequence[float]],
                     refused: Sequence[tuple[str, float, str]] = ()) -> list[tuple[str, float]]:
    """The (method, budget) pairs a request runs: each chosen compressing method at each chosen budget it is
    offered at. MethodError names a chosen pair the version lists but this registry refuses (`refused`, from
    `offered_points`, with its reason), a method not offered, a budget no chosen method is offered at, or a method
    left without any chosen budget."""
    chosen = [float(b) for b in budgets if float(b) < 1.0]
    names = [m for m in methods if m != "full"]
    for name, budget, why in refused:
        if name in names and any(math.isclose(budget, b) for b in chosen):
            raise MethodError(why)
    for name in names:
        if name not in offered:
            raise MethodError(f"KV method {name!r} is not offered by this version (offered: "
                              f"{', '.join(offered) or 'the full cache only'})")
    points = [(m, b) for m in names for b in chosen if any(math.isclose(b, o) for o in offered[m])]
    for budget in chosen:
        if not any(b == budget for _, b in points):
            raise MethodError(f"budget {budget:g} is not offered for {', '.join(names) or 'any chosen method'} "
                              f"(offered: {_offer_text(offered, names)})")
    for name in names:
        if not any(m == name for m, _ in points):
            raise MethodError(f"{name} runs at {', '.join(f'{b:g}' for b in offered[name]) or 'no budget'} in this "
                              f"version; choose one of those budgets")
    return points


def _offer_text(offered: Mapping[str, Sequence[float]], names: Sequence[str]) -> str:
    return "; ".join(f"{n} at {', '.join(f'{b:g}' for b in offered[n]) or 'none'}" for n in names) or "none"


def unrunnable(points: Sequence[tuple[str, float]], *, files_dir: Path | None = None, model_name: str = "",
               context_tokens: int | None = None) -> tuple[str, str] | None:
    """(method, why) for the first point that cannot run here (an unknown name, a budget it cannot honour, files
    it needs that are missing), else None."""
    for name, budget in points:
        try:
            info = method(name)
            if info.needs_files:
                files_for(info, files_dir, model_name)
            check_budget(name, 1.0 if name == "full" else budget, context_tokens=context_tokens)
        except MethodError as exc:
            return name, str(exc)
    return None


def quant_bits(budget: float) -> int | None:
    bits = budget * QUANT_BASE_BITS
    return round(bits) if abs(bits - round(bits)) < 1e-9 and round(bits) in (2, 4) else None


def plan(name: str, budget: float, *, files_dir: Path | None = None, model_name: str = "") -> KVPlan:
    """The press (or quantized cache) for one grid point, built from the method's own knob. Budget 1.0 is always
    the plain full cache, so every method's 100% point is exactly the uncompressed model."""
    check_budget(name, budget)
    m = METHODS[name]
    if name == "full" or budget >= 1.0:
        return KVPlan(method=name, budget=1.0)
    if m.quantized:
        return KVPlan(method=name, budget=budget, quant_bits=int(m.knob.value(budget)))
    press = _press_factories()[name](m.knob.value(budget), files_dir, model_name)
    return KVPlan(method=name, budget=budget, press=press, physical=m.physical, needs_eager=m.needs_eager,
                  logical_from=m.logical_from)

"""Efficiency methods by name: what each one does to the KV cache at a given budget.

A budget is the fraction of the full KV cache's bytes that a method keeps. For kvpress's token-dropping presses
that is the fraction of tokens kept (kvpress's ``compression_ratio`` is ``1 - budget``); for KV quantization it is
the bit width over the cache's 16-bit width (int4 over bf16 -> 0.25). Methods whose kvpress implementation masks
keys instead of freeing them are marked ``physical=False``: their memory figure stays the full cache's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

QUANT_BASE_BITS = 16  # budgets of the quantized cache are relative to a bf16/fp16 cache


class MethodError(ValueError):
    """An unknown method, a budget it cannot run at, or files it needs that are not configured."""


@dataclass(frozen=True)
class Method:
    name: str
    label: str
    summary: str
    physical: bool = True  # False: kvpress masks keys, the cache keeps its full size
    needs_eager: bool = False  # needs attention weights (eager attention)
    min_budget: float = 0.0  # budgets below this cannot be expressed by the method
    needs_files: str = ""  # sub-folder of the KV files folder this method reads; "" when none
    quantized: bool = False


@dataclass(frozen=True)
class KVPlan:
    """What the local backend does for one (method, budget): a press, a quantized cache, or nothing."""

    method: str
    budget: float
    press: Any = None
    quant_bits: int | None = None
    physical: bool = True
    needs_eager: bool = False

    @property
    def is_full(self) -> bool:
        return self.press is None and self.quant_bits is None


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("full", "Full cache", "No compression: the reference every budget is compared with."),
    Method("streaming_llm", "StreamingLLM", "Keeps the first (sink) tokens and a recent window."),
    Method("snapkv", "SnapKV", "Keeps tokens the last window's queries attend to (pooled)."),
    Method("pyramidkv", "PyramidKV", "SnapKV with larger budgets in lower layers, smaller in higher ones."),
    Method("tova", "TOVA", "Keeps tokens the last query attends to most, averaged over heads."),
    Method("knorm", "Knorm", "Keeps keys with the smallest L2 norm."),
    Method("observed_attention", "H2O (observed attention)",
           "Keeps heavy hitters by the attention they received during prefill.", needs_eager=True),
    Method("expected_attention", "Expected attention",
           "Keeps keys future queries are expected to attend to (query statistics)."),
    Method("keydiff", "KeyDiff", "Keeps keys least similar to the mean key."),
    Method("chunkkv", "ChunkKV", "SnapKV scores pooled over chunks of 20 tokens, kept or dropped whole."),
    Method("kv_quant", "KV quantization (quanto)",
           "Keys and values quantized per channel (int4 at 0.25, int2 at 0.125), recent 128 tokens in 16-bit.",
           quantized=True, min_budget=2 / QUANT_BASE_BITS),
    Method("adakv_snapkv", "AdaKV + SnapKV", "Head-wise budgets; kvpress masks the evicted keys (logical only).",
           physical=False),
    Method("think", "ThinK", "Prunes key channels; kvpress zeroes them without freeing memory (logical only).",
           physical=False, min_budget=0.5),
    Method("duo_attention", "DuoAttention",
           "Streaming heads keep sinks and a recent window; kvpress masks the rest (logical only).",
           physical=False, needs_files="duo_attention"),
    Method("qfilter", "Q-Filters", "Keys scored against learned query filters.", needs_files="q_filters"),
)}


def _press_factories() -> dict[str, Callable[[float, Path | None, str], Any]]:
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
        "think": lambda r, d, m: kvpress.ThinKPress(key_channel_compression_ratio=min(2 * r, 1.0)),
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


def _duo_attention_press(ratio: float, files_dir: Path | None, model_name: str) -> Any:
    import numpy as np
    from kvpress import DuoAttentionPress

    folder = files_for(METHODS["duo_attention"], files_dir, model_name)

    class LocalDuoAttentionPress(DuoAttentionPress):
        @staticmethod
        def load_attention_pattern(model: Any) -> tuple[int, int, Any]:
            # The same clipping as kvpress's loader, from a local copy of the DuoAttention repo's pattern folder.
            config = json.loads((folder / "config.json").read_text())
            scores = np.loadtxt(folder / "full_attention_heads.tsv", dtype=float, delimiter="\t")
            scores = np.clip(scores, 0, 1)
            return config["sink_size"], config["recent_size"], scores

    return LocalDuoAttentionPress(head_compression_ratio=ratio)


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


def check_budget(name: str, budget: float) -> None:
    m = method(name)
    if not (isinstance(budget, (int, float)) and math.isfinite(budget) and 0 < budget <= 1):
        raise MethodError(f"budget {budget!r} is not a fraction in (0, 1]")
    if name == "full" and budget != 1.0:
        raise MethodError("the full cache has budget 1.0 only")
    if budget < 1.0 and budget < m.min_budget:
        raise MethodError(f"{name} cannot keep less than {m.min_budget:g} of the cache; asked for {budget:g}")
    if m.quantized and budget < 1.0 and quant_bits(budget) is None:
        raise MethodError(f"kv_quant runs at budget 0.25 (int4) or 0.125 (int2); asked for {budget:g}")


def unrunnable(methods: Sequence[str], budgets: Sequence[float], *, files_dir: Path | None = None,
               model_name: str = "") -> tuple[str, str] | None:
    """(method, why) for the first requested method that cannot run here at one of the budgets (an unknown
    name, a budget it cannot express, files it needs that are missing), else None. `full` runs at 1.0 only."""
    for name in methods:
        try:
            info = method(name)
            if info.needs_files:
                files_for(info, files_dir, model_name)
            for budget in [1.0] if name == "full" else budgets:
                check_budget(name, budget)
        except MethodError as exc:
            return name, str(exc)
    return None


def quant_bits(budget: float) -> int | None:
    bits = budget * QUANT_BASE_BITS
    return round(bits) if abs(bits - round(bits)) < 1e-9 and round(bits) in (2, 4) else None


def plan(name: str, budget: float, *, files_dir: Path | None = None, model_name: str = "") -> KVPlan:
    """The press (or quantized cache) for one grid point. Budget 1.0 is always the plain full cache, so every
    method's 100% point is exactly the uncompressed model."""
    check_budget(name, budget)
    m = METHODS[name]
    if name == "full" or budget >= 1.0:
        return KVPlan(method=name, budget=1.0)
    if m.quantized:
        return KVPlan(method=name, budget=budget, quant_bits=quant_bits(budget))
    press = _press_factories()[name](1.0 - budget, files_dir, model_name)
    return KVPlan(method=name, budget=budget, press=press, physical=m.physical, needs_eager=m.needs_eager)

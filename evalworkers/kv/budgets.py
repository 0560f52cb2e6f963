"""What a KV budget means for a method: its own knob, the budgets it can honour, and how a point is named.

A budget is the fraction of the full KV cache's bytes that a method keeps (for methods that mask instead of
freeing, the fraction it keeps logically). Each method turns the budget into its own knob (kvpress's
``compression_ratio``, ThinK's ``key_channel_compression_ratio``, DuoAttention's ``head_compression_ratio``, a
quantized cache's bit width) through a `Knob`, and states with a `BudgetRule` which budgets leave something of
everything it prunes. The table of methods in `registry.py` pairs each method with both.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

QUANT_BASE_BITS = 16  # budgets of the quantized cache are relative to a bf16/fp16 cache


def percent(fraction: float) -> str:
    """0.25 -> '25%', 0.125 -> '12.5%', 1 - 0.9 -> '10%' (float noise rounded away)."""
    return f"{round(fraction * 100, 4):g}%"


@dataclass(frozen=True)
class Knob:
    """A method's own setting as a function of the budget b (a fraction in (0, 1])."""

    parameter: str  # the argument it sets, e.g. kvpress's "compression_ratio"
    value: Callable[[float], float]  # b -> that argument's value
    words: Callable[[float], str]  # b -> the setting in words, e.g. "40% of key channels pruned"


def evicted_tokens(what: str = "tokens", how: str = "") -> Knob:
    """Token eviction: kvpress's ``compression_ratio = 1 - b``, the fraction of tokens removed (kvpress's
    ScorerPress keeps ``max(1, int(n * (1 - compression_ratio)))`` of n tokens per head)."""
    suffix = f" {how}" if how else ""
    return Knob("compression_ratio", lambda b: round(1.0 - b, 9),
                lambda b: f"{percent(1.0 - b)} of {what} evicted{suffix}")


def pruned_key_channels() -> Knob:
    """ThinK: keys are half of the KV bytes, so pruning a fraction p of key channels keeps 1 - p/2 of the bytes;
    budget b therefore prunes p = 2 (1 - b) (kvpress's ThinKPress reports ``compression_ratio = p / 2``)."""
    return Knob("key_channel_compression_ratio", lambda b: round(2.0 * (1.0 - b), 9),
                lambda b: f"{percent(2.0 * (1.0 - b))} of key channels pruned")


def streaming_heads() -> Knob:
    """DuoAttention: a fraction h = 1 - b of the KV heads become streaming heads (sink + recent window only);
    the others keep every token. The cache kept is b plus the streaming heads' windows."""
    return Knob("head_compression_ratio", lambda b: round(1.0 - b, 9),
                lambda b: f"{percent(1.0 - b)} of heads streaming")


def bit_width() -> Knob:
    """Quantized cache: b = bits / 16, so 0.25 is int4 and 0.125 is int2 (transformers' QuantizedCache ``nbits``)."""
    return Knob("nbits", lambda b: round(b * QUANT_BASE_BITS),
                lambda b: f"int{round(b * QUANT_BASE_BITS)} keys and values")


NO_KNOB = Knob("", lambda b: 1.0, lambda b: "no compression")


@dataclass(frozen=True)
class BudgetRule:
    """The budgets a method can honour: ``low < b <= 1`` (open) or ``low <= b <= 1`` (closed), or, when `only` is
    given, just those points (and 1.0). `why` says what goes wrong outside; `source` is the paper or kvpress file
    it rests on. `points` are the budgets a version should offer the method at (its own natural settings).
    `min_kept_tokens`: the fewest tokens the budget must keep of the shortest context (a whole chunk, the sinks
    plus a recent token), with `tokens_why`."""

    low: float
    low_open: bool
    why: str
    source: str
    points: tuple[float, ...] = (0.5, 0.25, 0.1)
    only: bool = False
    min_kept_tokens: int = 0
    tokens_why: str = ""

    def contains(self, budget: float) -> bool:
        if budget >= 1.0:
            return budget == 1.0
        if self.only:
            return any(math.isclose(budget, p, abs_tol=1e-9) for p in self.points)
        return budget > self.low if self.low_open else budget >= self.low

    def interval(self) -> str:
        """The valid budgets as a set or interval, e.g. "(0.5, 1]" or "{0.125, 0.25, 1}"."""
        if self.only:
            return "{" + ", ".join(f"{p:g}" for p in sorted({*self.points, 1.0})) + "}"
        return f"{'(' if self.low_open else '['}{self.low:g}, 1]"

    def fits(self, budget: float, context_tokens: int) -> bool:
        """Whether `budget` keeps at least `min_kept_tokens` of a `context_tokens`-token context."""
        return not self.min_kept_tokens or int(context_tokens * budget) >= self.min_kept_tokens

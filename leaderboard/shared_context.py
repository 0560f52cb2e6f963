"""The shared-context mode on a model's page: what each KV method and budget loses after the first question.

Figures come from the cells (``first_turn_score``, ``later_turns_score``, the KV bytes and the per-turn times to first
token the worker stored) and, for the score by turn, from the sample rows grouped by turn. Every mean here is an
unweighted mean over the cells (tasks) it covers; a cell without the figure is left out of it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import fmean
from typing import Any

from django.db.models import Avg

from evalworkers.kv import registry
from leaderboard.models import Cell, SampleResult, Submission


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return fmean(present) if present else None


@dataclass(frozen=True)
class LengthDrop:
    """At one length: mean score (0-100) on the first question and on the later ones, and the drop (first - later,
    points; positive: later questions score lower)."""

    length: int
    first: float | None
    later: float | None

    @property
    def drop(self) -> float | None:
        return None if self.first is None or self.later is None else self.first - self.later


@dataclass(frozen=True)
class TurnDrop:
    """One KV method and budget: its drop at each length, its means over the lengths, and its KV bytes after the
    compression and after the last turn (means over the cells, bytes; None when not measured: endpoints)."""

    method: str
    budget: float
    label: str
    lengths: list[LengthDrop]
    kv_bytes: float | None = None
    kv_bytes_after_turns: float | None = None
    scores_by_turn: dict[int, float] = field(default_factory=dict)

    @property
    def kv_mib(self) -> float | None:
        return None if self.kv_bytes is None else self.kv_bytes / 2**20

    @property
    def kv_mib_after_turns(self) -> float | None:
        return None if self.kv_bytes_after_turns is None else self.kv_bytes_after_turns / 2**20

    @property
    def first(self) -> float | None:
        return _mean(d.first for d in self.lengths)

    @property
    def later(self) -> float | None:
        return _mean(d.later for d in self.lengths)

    @property
    def drop(self) -> float | None:
        return None if self.first is None or self.later is None else self.first - self.later


@dataclass(frozen=True)
class TtftRatio:
    """At one length: mean time to first token of turn 1 and of turn 2 (seconds, measured), and their ratio (turn 2
    over turn 1; well below 1 when the server reused the conversation's cached prefix)."""

    length: int
    first_s: float
    second_s: float

    @property
    def ratio(self) -> float:
        return self.second_s / self.first_s


def turn_drops(cells: Sequence[Mapping[str, Any]], turn_rows: Sequence[Mapping[str, Any]],
               lengths: Sequence[int]) -> list[TurnDrop]:
    """Per (method, budget), full cache first, then methods by name and budgets from the largest: ``cells`` are
    dicts with method, budget, length, first_turn_score, later_turns_score, kv_bytes, kv_bytes_after_turns (only
    the shared-context cells); ``turn_rows`` dicts with method, budget, turn and score (the mean over the cell's
    rows of that turn)."""
    grouped: dict[tuple[str, float], list[Mapping[str, Any]]] = defaultdict(list)
    for cell in cells:
        grouped[(cell["method"], float(cell["budget"]))].append(cell)
    by_turn: dict[tuple[str, float], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in turn_rows:
        if row["score"] is not None:
            by_turn[(row["method"], float(row["budget"]))][int(row["turn"])].append(float(row["score"]))
    out = []
    full = registry.FULL_CACHE.method
    for (method, budget), group in sorted(grouped.items(), key=lambda item: (item[0][0] != full, item[0][0],
                                                                             -item[0][1])):
        per_length = [LengthDrop(n, _mean(c["first_turn_score"] for c in group if c["length"] == n),
                                 _mean(c["later_turns_score"] for c in group if c["length"] == n)) for n in lengths]
        out.append(TurnDrop(
            method=method, budget=budget, label=registry.point_label(method, budget), lengths=per_length,
            kv_bytes=_mean(c["kv_bytes"] for c in group),
            kv_bytes_after_turns=_mean(c["kv_bytes_after_turns"] for c in group),
            scores_by_turn={t: fmean(v) for t, v in sorted(by_turn[(method, budget)].items())},
        ))
    return out


def ttft_ratios(cells: Sequence[Mapping[str, Any]], lengths: Sequence[int]) -> list[TtftRatio]:
    """Per length, over the full-cache cells that measured both turns' time to first token (as served)."""
    out = []
    for n in lengths:
        here = [c for c in cells if c["length"] == n and c["method"] == registry.FULL_CACHE.method
                and c["first_turn_ttft_s"] and c["second_turn_ttft_s"] is not None]
        if here:
            out.append(TtftRatio(n, fmean(c["first_turn_ttft_s"] for c in here),
                                 fmean(c["second_turn_ttft_s"] for c in here)))
    return out


@dataclass(frozen=True)
class SharedContext:
    """What the model page shows for a submission with shared-context tasks (``of`` gives None without any)."""

    drops: list[TurnDrop]
    ttft: list[TtftRatio]
    turns: int

    @property
    def lines(self) -> list[dict[str, Any]]:
        """The chart's lines (``charts.turn_figure``)."""
        return [{"label": d.label, "scores_by_turn": d.scores_by_turn} for d in self.drops]


def of(sub: Submission, lengths: Sequence[int]) -> SharedContext | None:
    """The submission's shared-context figures; None when none of its cells asked more than one question."""
    cells = list(Cell.objects.filter(submission=sub, first_turn_score__isnull=False).values(
        "method", "budget", "length", "first_turn_score", "later_turns_score", "kv_bytes", "kv_bytes_after_turns",
        "first_turn_ttft_s", "second_turn_ttft_s"))
    if not cells:
        return None
    turn_rows = list(SampleResult.objects.filter(cell__submission=sub, cell__first_turn_score__isnull=False)
                     .values("cell__method", "cell__budget", "cell", "turn").annotate(score=Avg("score")))
    rows = [{"method": r["cell__method"], "budget": r["cell__budget"], "turn": r["turn"], "score": r["score"]}
            for r in turn_rows]
    turns = max((r["turn"] for r in rows), default=1)
    return SharedContext(drops=turn_drops(cells, rows, lengths), ttft=ttft_ratios(cells, lengths), turns=turns)

"""The gap between literal and non-literal retrieval at each length, for a version that runs both variants of the
non-literal needle task (NoLiMa's comparison: Modarressi et al. 2025 report how much a model loses when the question
shares no words with the needle)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from leaderboard.charts import length_label
from leaderboard.models import BenchmarkVersion

TASK_TYPE = "non_literal_needle"


@dataclass(frozen=True)
class GapAtLength:
    """Scores (0-100) of one length; ``gap_points`` = literal - non-literal, None where either is missing."""

    length: int
    label: str
    literal: float | None
    non_literal: float | None
    gap_points: float | None


@dataclass(frozen=True)
class LiteralGap:
    literal_task: str
    non_literal_task: str
    lengths: list[GapAtLength]


def literal_gap(version: BenchmarkVersion, task_scores: Mapping[str, Mapping[str, float | None]]) -> LiteralGap | None:
    """The gap per length from a row's ``task_scores`` ({task key: {"4096": score}}), or None when the version lacks
    a literal or a non-literal task of that type (the first of each, by key, is used)."""
    keys: dict[str, str] = {}
    for task in version.tasks.filter(task_type=TASK_TYPE).order_by("key"):
        keys.setdefault((task.params or {}).get("variant", "non_literal"), task.key)
    if "literal" not in keys or "non_literal" not in keys:
        return None
    literal_scores = task_scores.get(keys["literal"], {})
    other_scores = task_scores.get(keys["non_literal"], {})
    rows = []
    for n in version.lengths:
        literal, other = literal_scores.get(str(n)), other_scores.get(str(n))
        gap = round(literal - other, 1) if literal is not None and other is not None else None
        rows.append(GapAtLength(n, length_label(n), literal, other, gap))
    return LiteralGap(keys["literal"], keys["non_literal"], rows)

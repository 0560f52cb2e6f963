"""What each KV method keeps: score against budget at one length, and the smallest budget that keeps 90% of
the full cache's score at each length (from the cached rows of one submission)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from leaderboard.models import LeaderboardRow

KEEP_FRACTION = 0.9


def points_at(rows: Sequence[LeaderboardRow], length: int) -> list[dict[str, Any]]:
    """(method, budget, score) at one length, for the score-vs-budget chart."""
    return [{"method": r.method, "budget": r.budget, "score": r.scores_by_length.get(str(length))}
            for r in rows if r.scores_by_length.get(str(length)) is not None]


def budget_to_keep(rows: Sequence[LeaderboardRow], lengths: Sequence[int],
                   keep: float = KEEP_FRACTION) -> list[dict[str, Any]]:
    """Per method, per length: the smallest budget whose score is at least `keep` x the full cache's there
    (None when no budget does, or the full cache was not measured at that length)."""
    full = next((r for r in rows if r.method == "full" and r.budget == 1.0), None)
    table = []
    for method in sorted({r.method for r in rows} - {"full"}):
        by_budget = sorted((r for r in rows if r.method == method), key=lambda r: r.budget)
        cells = []
        for n in lengths:
            reference = full.scores_by_length.get(str(n)) if full else None
            fits = [r.budget for r in by_budget
                    if reference is not None and (r.scores_by_length.get(str(n)) or -1) >= keep * reference]
            cells.append(min(fits) if fits else None)
        table.append({"method": method, "budgets": cells})
    return table

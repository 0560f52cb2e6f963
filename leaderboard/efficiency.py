"""What each KV method keeps: score against budget at one length, the smallest budget that keeps 90% of the full
cache's score at each length (from the cached rows of one submission), and the measured memory and speed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import Avg, Count, Max, Q

from evalworkers.kv import registry
from leaderboard.models import Cell, CellStatus, LeaderboardRow, Submission

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


def measured(sub: Submission) -> list[dict[str, Any]]:
    """Per (method, budget, length), over tasks: what the local backend measured, and whether it ran out of memory."""
    found = (Cell.objects.filter(submission=sub).values("method", "budget", "length")
             .annotate(kv=Avg("kv_bytes"), full=Avg("kv_bytes_full"), kept=Avg("kept_fraction"),
                       peak=Max("peak_memory_bytes"), prefill=Avg("prefill_s"), ttft=Avg("ttft_s"),
                       decode=Avg("decode_tokens_per_s"), logical=Count("pk", filter=Q(physical=False)),
                       oom=Count("pk", filter=Q(status=CellStatus.OOM)))
             .order_by("method", "-budget", "length"))
    lines = [dict(row) for row in found if row["kv"] is not None or row["oom"]]
    for line in lines:
        line["kv_mib"] = line["kv"] / 2**20 if line["kv"] is not None else None
        line["peak_mib"] = line["peak"] / 2**20 if line["peak"] is not None else None
        line["kept_percent"] = line["kept"] * 100 if line["kept"] is not None else None
    return lines


def oom_summary(lines: Sequence[dict[str, Any]]) -> list[str]:
    """Plain sentences: the shortest length at which each (method, budget) ran out of memory, and what fit there."""
    sentences = []
    ooms: dict[tuple[str, float], int] = {}
    for line in lines:
        key = (line["method"], line["budget"])
        if line["oom"] and key not in ooms:
            ooms[key] = line["length"]
    for (method, budget), length in sorted(ooms.items(), key=lambda item: item[1]):
        fits = sorted({registry.point_label(line["method"], line["budget"]) for line in lines
                       if line["length"] == length and not line["oom"] and line["kv"] is not None})
        sentence = f"{registry.point_label(method, budget)} runs out of memory at {length:,} tokens"
        sentences.append(sentence + (f"; {', '.join(fits)} fit{'s' if len(fits) == 1 else ''}" if fits else ""))
    return sentences

"""One model across benchmark versions: the other results of the same model (matched by `ModelEntry.model_key`,
its Hugging Face repo id or the alias table's key), each labelled with where its figures come from."""

from __future__ import annotations

from typing import Any

from leaderboard.models import LeaderboardRow, Submission, Visibility


def source_label(row: LeaderboardRow) -> str:
    version = row.version
    if version.is_reported:
        return f"Reported by {version.benchmark_name or 'the benchmark'}'s authors, not measured here"
    if row.model_kind == "reported":
        return "Reported (imported results), not measured here"
    return "Measured here"


def elsewhere(sub: Submission) -> list[dict[str, Any]]:
    """The full-cache rows of every other visible submission of the same model, measured ones first."""
    key = sub.model.model_key
    if not key:
        return []
    rows = (LeaderboardRow.objects.filter(submission__model__model_key=key, method="full", budget=1.0)
            .exclude(submission=sub).exclude(visibility=Visibility.HIDDEN)
            .select_related("version").order_by("version__origin", "version__slug", "model_name"))
    return [{"row": r, "source": source_label(r), "measured": not r.version.is_reported
             and r.model_kind != "reported"} for r in rows]

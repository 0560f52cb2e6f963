"""Per-sample reads for the model page: the needle depth x length picture and the sample browser.

The figures (`page_figures`) are summarised once, when the submission's result is recomputed, and stored on it, so
the model page does not read its samples to draw them; the sample browser reads one page of samples.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Avg, Count, Q, QuerySet, Sum

from leaderboard import charts
from leaderboard.models import SampleResult, Submission, TaskCategory

MAX_DEPTH_POINTS = 20_000


def depth_points(sub: Submission) -> list[dict]:
    """(length, depth, score) of the full-cache retrieval samples; enough for the classic heatmap."""
    rows = (
        SampleResult.objects.filter(cell__submission=sub, cell__method="full",
                                    cell__task__category=TaskCategory.RETRIEVAL, score__isnull=False)
        .values_list("cell__length", "metadata__depth_percent", "score")[:MAX_DEPTH_POINTS]
    )
    return [{"length": length, "depth_percent": depth, "score": score}
            for length, depth, score in rows if isinstance(depth, int | float)]


def page_figures(sub: Submission) -> dict[str, Any]:
    """The model page's sample figures: {"depth": one point per needle-depth bin and length (mean score, at the
    bin's middle depth: drawn by charts.depth_heatmap_figure as the samples themselves would be), "answers":
    `answer_summary`}."""
    lengths = list(sub.version.lengths)
    grid = charts.depth_grid(depth_points(sub), lengths)
    depth = [{"length": int(length), "depth_percent": charts.depth_bin_middle(label), "score": float(score)}
             for label, by_length in grid.iterrows() for length, score in by_length.items() if score == score]
    return {"depth": depth, "answers": answer_summary(sub)}


def stored_figures(sub: Submission) -> dict[str, Any]:
    """`page_figures` as stored with the result, or computed now for a result stored before they were."""
    return sub.figures if sub.figures else page_figures(sub)


def browse(sub: Submission, *, failures_only: bool = False, task: str = "") -> QuerySet[SampleResult]:
    results = SampleResult.objects.filter(cell__submission=sub).select_related("cell__task").order_by(
        "cell__task__key", "cell__length", "cell__method", "-cell__budget", "index", "turn")
    if failures_only:
        results = results.filter(Q(score__lt=100) | Q(score__isnull=True))
    if task:
        results = results.filter(cell__task__key=task)
    return results


def answer_summary(sub: Submission) -> dict:
    """Over a submission's scored samples: why replies ended (``stop``/``length``/``other`` counts), how many had
    no final answer, and the reasoning's mean length in characters (and tokens, where the server reported them)
    over the samples that reasoned (``reasoned``: their count)."""
    totals = sub.cells.aggregate(stop=Sum("finish_stop"), length=Sum("finish_length"), other=Sum("finish_other"),
                                 no_final_answer=Sum("no_final_answer"))
    reasoning = SampleResult.objects.filter(cell__submission=sub, score__isnull=False, reasoning_chars__gt=0).aggregate(
        reasoned=Count("pk"), chars_mean=Avg("reasoning_chars"), tokens_mean=Avg("reasoning_tokens"))
    return {**{k: v or 0 for k, v in totals.items()}, **reasoning}

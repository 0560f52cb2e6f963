"""Per-sample reads for the model page: the needle depth x length picture and the sample browser."""

from __future__ import annotations

from django.db.models import Q, QuerySet

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


def browse(sub: Submission, *, failures_only: bool = False, task: str = "") -> QuerySet[SampleResult]:
    results = SampleResult.objects.filter(cell__submission=sub).select_related("cell__task").order_by(
        "cell__task__key", "cell__length", "cell__method", "-cell__budget", "index")
    if failures_only:
        results = results.filter(Q(score__lt=100) | Q(score__isnull=True))
    if task:
        results = results.filter(cell__task__key=task)
    return results

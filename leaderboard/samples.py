"""Per-sample reads for the model page: the needle depth x length picture and the sample browser."""

from __future__ import annotations

from django.db.models import Avg, Count, Q, QuerySet, Sum

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

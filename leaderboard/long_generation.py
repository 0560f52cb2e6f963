"""The output-length axis on a model's page: long-generation scores by required reply length, how the replies
ended, decode speed and KV bytes after decoding, and where in a many-answers reply the answers fail."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from statistics import fmean
from typing import Any

from evalworkers.kv import registry
from leaderboard.models import BenchmarkVersion, Cell, CellStatus, SampleResult, Submission, TaskSpec

MANY_ANSWERS = "many_answers"
MAX_POSITION_SAMPLES = 2000


def outputs_by_task(tasks: Iterable[TaskSpec]) -> dict[str, int]:
    """Task key -> required reply length in tokens, for the long-generation tasks among ``tasks``."""
    return {t.key: t.output_tokens for t in tasks if t.output_tokens is not None}


def output_lengths(version: BenchmarkVersion) -> list[int]:
    """The version's required reply lengths, ascending; empty when it has no long-generation task."""
    return sorted(set(outputs_by_task(version.tasks.all()).values()))


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return fmean(present) if present else None


def reply_table(sub: Submission) -> list[dict[str, Any]]:
    """Per KV point and required reply length, over the ended long-generation cells: the mean score (0-100), the
    mean reply tokens written (as the backend counted them), how many scored replies ran into the token limit and
    how many stopped on their own, the mean decode speed (tokens/s, measured) and, for local models, the mean KV
    bytes when decoding ended (measured). Rows are ordered by KV point (full cache first), then reply length."""
    outputs = outputs_by_task(sub.version.tasks.all())
    cells = (Cell.objects.filter(submission=sub, task__key__in=list(outputs),
                                 status__in=[CellStatus.COMPLETED, CellStatus.OOM])
             .select_related("task").order_by("method", "-budget", "length"))
    groups: dict[tuple[str, float, int], list[Cell]] = defaultdict(list)
    for cell in cells:
        groups[(cell.method, cell.budget, outputs[cell.task.key])].append(cell)
    table = []
    for (method, budget, output), members in sorted(
            groups.items(), key=lambda item: (item[0][0] != "full", item[0][0], -item[0][1], item[0][2])):
        end = _mean([c.kv_bytes_end for c in members])
        table.append({
            "method": method, "budget": budget, "point": registry.point_label(method, budget),
            "output_tokens": output, "cells": len(members),
            "score": _mean([c.score for c in members]),
            "written_tokens": _mean([c.output_tokens_mean for c in members]),
            "at_limit": sum(c.finish_length for c in members), "stopped": sum(c.finish_stop for c in members),
            "other": sum(c.finish_other for c in members),
            "decode_tokens_per_s": _mean([c.decode_tokens_per_s for c in members]),
            "kv_bytes_end": round(end) if end is not None else None,
            "kv_end_mib": end / 2**20 if end is not None else None,
        })
    return table


def position_samples(sub: Submission) -> list[dict[str, Any]]:
    """The full cache's many-answers samples: their required reply length and per-question scores (0-1, in the
    order asked), for ``charts.position_heatmap_figure``."""
    outputs = outputs_by_task(sub.version.tasks.filter(task_type=MANY_ANSWERS))
    rows = (SampleResult.objects.filter(cell__submission=sub, cell__method="full", cell__budget=1.0,
                                        cell__task__key__in=list(outputs), score__isnull=False)
            .values_list("cell__task__key", "metadata__scoring__per_question")[:MAX_POSITION_SAMPLES])
    return [{"output_tokens": outputs[key], "per_question": per_question}
            for key, per_question in rows if isinstance(per_question, list)]

"""Import externally reported results (lm-evaluation-harness result files, or a simple CSV).

Imported results become model entries of kind "reported" with a completed submission and full-cache cells,
shown with a "Reported" badge: never mixed silently with scores we measured. A file is checked whole before
anything is written; the first problem is reported with the line or key that is wrong.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from leaderboard import rows
from leaderboard.models import BenchmarkVersion, Cell, CellStatus, ModelEntry, ModelKind, Submission, SubmissionStatus

LENGTH_KEY = re.compile(r"^(\d+),(\w+)$")  # lm-eval's "<length>,<filter>" metric keys, e.g. "4096,none"
CSV_COLUMNS = ("model", "task", "length", "score")


class ImportFileError(ValueError):
    """The file cannot be imported; the message names the line or key to fix."""


@dataclass
class ReportedModel:
    name: str
    scores: dict[tuple[str, int], float] = field(default_factory=dict)


def _check_point(version: BenchmarkVersion, tasks: set[str], where: str, task: str, length: int) -> None:
    if task not in tasks:
        raise ImportFileError(
            f"{where}: task {task!r} is not in {version.slug} (its tasks: {', '.join(sorted(tasks))})."
        )
    if length not in version.lengths:
        raise ImportFileError(f"{where}: length {length} is not one of {version.slug}'s lengths "
                              f"({', '.join(map(str, version.lengths))}).")


def _score(where: str, raw: object, scale: float) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise ImportFileError(f"{where}: score {raw!r} is not a number.")
    try:
        value = float(raw) * scale
    except ValueError:
        raise ImportFileError(f"{where}: score {raw!r} is not a number.") from None
    if not 0.0 <= value <= 100.0:
        raise ImportFileError(f"{where}: score {value:g} is outside 0-100.")
    return value


def parse_lm_eval(text: str, version: BenchmarkVersion, model_name: str) -> ReportedModel:
    """lm-eval's results JSON: results[task]["<length>,<filter>"] = score; -1 means "not run" and is skipped.

    lm-eval reports RULER scores as fractions of 1; a file whose scores exceed 1 is read as percentages."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFileError(f"not valid JSON (line {exc.lineno}: {exc.msg}).") from None
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, dict) or not results:
        raise ImportFileError("no 'results' object: is this an lm-evaluation-harness results file?")
    tasks = set(version.tasks.values_list("key", flat=True))
    points: list[tuple[str, str, int, object]] = []
    for task, metrics in results.items():
        if not isinstance(metrics, dict):
            raise ImportFileError(f"results.{task}: expected an object of metrics.")
        for key, raw in metrics.items():
            match = LENGTH_KEY.match(key)
            if match is None or task not in tasks:
                continue  # alias and stderr keys; group rows such as "ruler" and tasks of other suites
            points.append((f'results.{task}["{key}"]', task, int(match.group(1)), raw))
    measured = [p for p in points if not (isinstance(p[3], int | float) and p[3] == -1)]
    if not measured:
        raise ImportFileError(f"no per-length scores for any task of {version.slug} (keys like \"4096,none\" under "
                              f"results.<task>, tasks: {', '.join(sorted(tasks))}).")
    numbers = [float(p[3]) for p in measured if isinstance(p[3], int | float) and not isinstance(p[3], bool)]
    scale = 100.0 if numbers and max(numbers) <= 1.0 else 1.0
    model = ReportedModel(model_name)
    for where, task, length, raw in measured:
        _check_point(version, tasks, where, task, length)
        model.scores[(task, length)] = _score(where, raw, scale)
    return model


def parse_csv(text: str, version: BenchmarkVersion) -> list[ReportedModel]:
    """Columns model, task, length, score (0-100); one model per distinct name."""
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or [f.strip().lower() for f in reader.fieldnames] != list(CSV_COLUMNS):
        raise ImportFileError(f"line 1: expected the header {','.join(CSV_COLUMNS)}, got {reader.fieldnames}.")
    tasks = set(version.tasks.values_list("key", flat=True))
    models: dict[str, ReportedModel] = {}
    for line, record in enumerate(reader, start=2):
        where = f"line {line}"
        name = (record.get("model") or "").strip()
        if not name or len(name) > 120:
            raise ImportFileError(f"{where}: the model name must have 1 to 120 characters.")
        task = (record.get("task") or "").strip()
        try:
            length = int((record.get("length") or "").strip())
        except ValueError:
            raise ImportFileError(
                f"{where}: length {record.get('length')!r} is not a whole number of tokens."
            ) from None
        _check_point(version, tasks, where, task, length)
        model = models.setdefault(name, ReportedModel(name))
        if (task, length) in model.scores:
            raise ImportFileError(f"{where}: {name} / {task} / {length} appears twice.")
        model.scores[(task, length)] = _score(where, record.get("score"), 1.0)
    if not models:
        raise ImportFileError("the file has a header but no rows.")
    return list(models.values())


@transaction.atomic
def save(models: list[ReportedModel], version: BenchmarkVersion, *, organisation: str = "",
         source: str = "") -> list[Submission]:
    """One reported entry + completed submission + cells per model, and their leaderboard rows."""
    task_ids = dict(version.tasks.values_list("key", "pk"))
    created = []
    now = timezone.now()
    for model in models:
        entry = ModelEntry.objects.create(display_name=model.name[:120], organisation=organisation[:120],
                                          kind=ModelKind.REPORTED)
        sub = Submission.objects.create(model=entry, version=version, status=SubmissionStatus.COMPLETED,
                                        started_at=now, finished_at=now, public_note=source[:500])
        Cell.objects.bulk_create(
            Cell(submission=sub, task_id=task_ids[task], length=length, status=CellStatus.COMPLETED, score=score)
            for (task, length), score in sorted(model.scores.items())
        )
        sub.cells_total = sub.cells_done = len(model.scores)
        sub.save(update_fields=["cells_total", "cells_done"])
        created.append(sub)
    for sub in created:
        rows.recompute(sub.pk)
    return created


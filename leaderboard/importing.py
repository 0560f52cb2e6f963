"""Import externally reported results (lm-evaluation-harness result files, or a simple CSV).

Imported results become model entries of kind "reported" with a completed submission and full-cache cells,
shown with a "Reported" badge: never mixed silently with scores we measured. A file is checked whole before
anything is written; the first problem is reported with the line or key that is wrong.

Keeping faith with the file: lm-eval's names of RULER's tasks are mapped to the version's keys (RULER's own
spelling and lm-eval's, see TASK_ALIASES); a task the version does not know refuses the file with every such name
(``skip_unknown`` imports the rest and marks the row partial); the same file, or the same model on the same
version, is not imported twice (``replace`` swaps an earlier import of the model for the new one).
"""

from __future__ import annotations

import csv
import hashlib
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

TASK_ALIASES: dict[str, str] = {
    "ruler_vt": "vt",
    "ruler_cwe": "cwe",
    "ruler_fwe": "fwe",
    "ruler_qa_squad": "qa_1",
    "ruler_qa_hotpot": "qa_2",
}
"""lm-evaluation-harness's names of RULER tasks -> RULER's own (NVIDIA/RULER, and our versions' keys).
lm-eval's group ``ruler`` (lm_eval/tasks/ruler/ruler.yaml) lists the 13: niah_single_1..3, niah_multikey_1..3,
niah_multiquery, niah_multivalue (the same names in both), ruler_vt, ruler_cwe, ruler_fwe, ruler_qa_squad,
ruler_qa_hotpot. RULER's qa_1 is SQuAD and qa_2 HotpotQA."""
LM_EVAL_GROUPS = frozenset({"ruler"})
"""Group rows of an lm-eval results file (aggregates, not tasks); a file's own ``group_subtasks`` adds more."""


class ImportFileError(ValueError):
    """The file cannot be imported; the message names the line or key to fix."""


@dataclass
class ReportedModel:
    name: str
    scores: dict[tuple[str, int], float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # task names of the file left out (skip_unknown)


def file_hash(content: bytes | str) -> str:
    """SHA-256 of a file's content: the same file imported twice is recognised by it."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    return hashlib.sha256(data).hexdigest()


def resolve_task(name: str, tasks: set[str]) -> str | None:
    """The version's key for a task name in either spelling (the version's own, RULER's or lm-eval's); None if the
    version has no such task."""
    if name in tasks:
        return name
    ruler = TASK_ALIASES.get(name)
    if ruler in tasks:
        return ruler
    lm_eval = next((alias for alias, key in TASK_ALIASES.items() if key == name), None)
    return lm_eval if lm_eval in tasks else None


def _unknown_error(version: BenchmarkVersion, tasks: set[str], unknown: dict[str, str]) -> ImportFileError:
    """Every unknown task name with where it first appears (a line of a CSV, a key of a JSON file)."""
    names = ", ".join(f"{name!r} ({where})" for name, where in unknown.items())
    return ImportFileError(
        f"{len(unknown)} task(s) not in {version.slug}: {names} (its tasks: {', '.join(sorted(tasks))}; lm-eval's "
        f"ruler_* names are accepted for RULER's). Fix the names, or import the rest with --skip-unknown "
        f"(\"Skip unknown tasks\" in the admin): the row is then marked partial."
    )


def _check_point(version: BenchmarkVersion, tasks: set[str], where: str, task: str, length: int) -> None:
    if task not in tasks:
        raise ImportFileError(
            f"{where}: task {task!r} is not in {version.slug} (its tasks: {', '.join(sorted(tasks))})."
        )
    _check_length(version, where, length)


def _check_length(version: BenchmarkVersion, where: str, length: int) -> None:
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


def parse_lm_eval(text: str, version: BenchmarkVersion, model_name: str, *,
                  skip_unknown: bool = False) -> ReportedModel:
    """lm-eval's results JSON: results[task]["<length>,<filter>"] = score; -1 means "not run" and is skipped.

    Every entry of ``results`` is a task of the version (under any spelling, `resolve_task`) or a group row
    (``ruler``, or a key of the file's ``group_subtasks``); any other refuses the file, naming them all, unless
    ``skip_unknown``. lm-eval reports RULER scores as fractions of 1; a file whose scores exceed 1 is read as
    percentages."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFileError(f"not valid JSON (line {exc.lineno}: {exc.msg}).") from None
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, dict) or not results:
        raise ImportFileError("no 'results' object: is this an lm-evaluation-harness results file?")
    tasks = set(version.tasks.values_list("key", flat=True))
    subtasks = data.get("group_subtasks")
    groups = LM_EVAL_GROUPS | (set(subtasks) if isinstance(subtasks, dict) else set())
    points: list[tuple[str, str, int, object]] = []
    unknown: dict[str, str] = {}
    for name, metrics in results.items():
        task = resolve_task(name, tasks)
        if task is None:
            if name not in groups:
                unknown[name] = f"results.{name}"
            continue
        if not isinstance(metrics, dict):
            raise ImportFileError(f"results.{name}: expected an object of metrics.")
        for key, raw in metrics.items():
            match = LENGTH_KEY.match(key)
            if match is None:
                continue  # alias and stderr keys
            points.append((f'results.{name}["{key}"]', task, int(match.group(1)), raw))
    if unknown and not skip_unknown:
        raise _unknown_error(version, tasks, unknown)
    measured = [p for p in points if not (isinstance(p[3], int | float) and p[3] == -1)]
    if not measured:
        raise ImportFileError(f"no per-length scores for any task of {version.slug} (keys like \"4096,none\" under "
                              f"results.<task>, tasks: {', '.join(sorted(tasks))}).")
    numbers = [float(p[3]) for p in measured if isinstance(p[3], int | float) and not isinstance(p[3], bool)]
    scale = 100.0 if numbers and max(numbers) <= 1.0 else 1.0
    model = ReportedModel(model_name, skipped=sorted(unknown))
    for where, task, length, raw in measured:
        _check_length(version, where, length)
        if (task, length) in model.scores:
            raise ImportFileError(f"{where}: {task} at {length} appears twice (under two names of the task).")
        model.scores[(task, length)] = _score(where, raw, scale)
    return model


def parse_csv(text: str, version: BenchmarkVersion, *, skip_unknown: bool = False) -> list[ReportedModel]:
    """Columns model, task, length, score (0-100); one model per distinct name. Task names may use either
    spelling (`resolve_task`); rows of unknown tasks refuse the file, naming them all, unless ``skip_unknown``."""
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or [f.strip().lower() for f in reader.fieldnames] != list(CSV_COLUMNS):
        raise ImportFileError(f"line 1: expected the header {','.join(CSV_COLUMNS)}, got {reader.fieldnames}.")
    tasks = set(version.tasks.values_list("key", flat=True))
    models: dict[str, ReportedModel] = {}
    unknown: dict[str, str] = {}  # task name -> the first line with it
    skipped: dict[str, set[str]] = {}  # model -> its unknown task names
    for line, record in enumerate(reader, start=2):
        where = f"line {line}"
        name = (record.get("model") or "").strip()
        if not name or len(name) > 120:
            raise ImportFileError(f"{where}: the model name must have 1 to 120 characters.")
        raw_task = (record.get("task") or "").strip()
        try:
            length = int((record.get("length") or "").strip())
        except ValueError:
            raise ImportFileError(
                f"{where}: length {record.get('length')!r} is not a whole number of tokens."
            ) from None
        model = models.setdefault(name, ReportedModel(name))
        task = resolve_task(raw_task, tasks)
        if task is None:
            unknown.setdefault(raw_task, where)
            skipped.setdefault(name, set()).add(raw_task)
            continue
        _check_point(version, tasks, where, task, length)
        if (task, length) in model.scores:
            raise ImportFileError(f"{where}: {name} / {task} / {length} appears twice.")
        model.scores[(task, length)] = _score(where, record.get("score"), 1.0)
    if unknown and not skip_unknown:
        raise _unknown_error(version, tasks, unknown)
    for name, names in skipped.items():
        models[name].skipped = sorted(names)
    empty = [m.name for m in models.values() if not m.scores]
    if empty:
        raise ImportFileError(f"no rows of a task of {version.slug} for {', '.join(empty)}.")
    if not models:
        raise ImportFileError("the file has a header but no rows.")
    return list(models.values())


def _earlier(models: list[ReportedModel], version: BenchmarkVersion) -> dict[str, list[Submission]]:
    """Reported submissions of the same model names (case-insensitive) on this version."""
    found: dict[str, list[Submission]] = {}
    for model in models:
        subs = list(Submission.objects.filter(version=version, model__kind=ModelKind.REPORTED,
                                              model__display_name__iexact=model.name[:120])
                    .select_related("model").order_by("pk"))
        if subs:
            found[model.name] = subs
    return found


def _same_file(version: BenchmarkVersion, sha256: str) -> list[Submission]:
    if not sha256:
        return []
    return list(Submission.objects.filter(version=version, import_sha256=sha256).select_related("model")
                .order_by("pk"))


def check_new(models: list[ReportedModel], version: BenchmarkVersion, sha256: str, *, replace: bool = False) -> None:
    """Refuse a re-import: the same file on this version (always), or a model already imported on it (unless
    ``replace``, which swaps the earlier imports for this one)."""
    if replace:
        return
    same = _same_file(version, sha256)
    if same:
        raise ImportFileError(f"this file was already imported into {version.slug} (submission #{same[0].pk}, "
                              f"{same[0].model.display_name}). Use --replace (\"Replace earlier imports\" in the "
                              "admin) to import it again in its place.")
    earlier = _earlier(models, version)
    if earlier:
        listed = "; ".join(f"{subs[0].model.display_name} (submission #{', #'.join(str(s.pk) for s in subs)})"
                           for subs in earlier.values())
        raise ImportFileError(f"already imported into {version.slug}: {listed}. Use --replace (\"Replace earlier "
                              f"imports\" in the admin) to replace them with this file.")


@transaction.atomic
def save(models: list[ReportedModel], version: BenchmarkVersion, *, organisation: str = "",
         source: str = "", sha256: str = "", replace: bool = False) -> list[Submission]:
    """One reported entry + completed submission + cells per model, and their leaderboard rows.

    Refuses a re-import (`check_new`); with ``replace`` the earlier submissions of the same models on this version
    go first (with their entries, when nothing else refers to them)."""
    check_new(models, version, sha256, replace=replace)
    replaced = {s.pk: s for subs in _earlier(models, version).values() for s in subs}
    replaced.update((s.pk, s) for s in _same_file(version, sha256))
    for sub in replaced.values():
        entry = sub.model
        sub.delete()
        if not entry.submissions.exists():
            entry.delete()
    task_ids = dict(version.tasks.values_list("key", "pk"))
    created = []
    now = timezone.now()
    for model in models:
        entry = ModelEntry.objects.create(display_name=model.name[:120], organisation=organisation[:120],
                                          kind=ModelKind.REPORTED)
        sub = Submission.objects.create(model=entry, version=version, status=SubmissionStatus.COMPLETED,
                                        started_at=now, finished_at=now, public_note=source[:500],
                                        import_sha256=sha256, import_skipped=list(model.skipped))
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

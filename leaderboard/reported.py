"""Load external benchmarks' published tables (data/reported/) as reported versions: the manifest
(benchmarks.json) describes each version (its benchmark, lengths, effective-length rule, tasks, source) and names a
CSV of its rows, one per model, with every figure as the table prints it.

A file is checked whole before anything is written; a malformed one is refused with its path and line. Loading is
idempotent: a version is created once (published, with the spec hash of what it describes) and a row that did not
change is left alone; a changed row is updated and its leaderboard row recomputed; a row gone from the file goes
from the database. A version whose description changed is refused (it is frozen): give the new one another slug.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone

from leaderboard import published, rows, versioning
from leaderboard.models import (
    BenchmarkVersion,
    EffectiveLengthRule,
    ModelEntry,
    ModelKind,
    ReportedResult,
    Submission,
    SubmissionStatus,
    VersionOrigin,
    VersionStatus,
)

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "reported"
MANIFEST = DATA_DIR / "benchmarks.json"
ROW_COLUMNS = ("model", "hf_repo", "link", "parameters_b", "claimed_length", "effective_length", "base_score",
               "threshold")
AGGREGATE_COLUMNS = ("average", "wavg_inc", "wavg_inc_rank", "wavg_dec", "wavg_dec_rank", "notes")
NOT_PUBLISHED = ("", "-")  # a blank cell, or the table's "-": no score at that length
VERSION_KEYS = ("slug", "title", "benchmark", "rows", "source_url", "lengths", "effective_length_rule",
                "effective_length_threshold", "reported_tasks", "notes")
_url = URLValidator(schemes=["http", "https"])


class ReportedFileError(ValueError):
    """A data file cannot be loaded; the message names the file and the line (or key) to fix."""


@dataclass(frozen=True)
class VersionSpec:
    slug: str
    title: str
    benchmark: str
    rows_file: Path
    source_url: str
    lengths: list[int]
    rule: str
    threshold: float
    reported_tasks: list[str]
    notes: str

    @property
    def length_columns(self) -> list[str]:
        return [published.length_label(n) for n in self.lengths]

    def description(self) -> dict[str, Any]:
        """What the version means; its hash is the version's spec hash (a changed description is refused)."""
        return {"origin": VersionOrigin.REPORTED.value, "benchmark": self.benchmark, "source_url": self.source_url,
                "lengths": self.lengths, "effective_length_rule": self.rule,
                "effective_length_threshold": self.threshold, "reported_tasks": self.reported_tasks}


@dataclass
class ReportedRow:
    line: int
    label: str
    hf_repo: str
    link: str
    parameters_b: Decimal | None
    claimed_context: int | None
    base_score: float | None
    scores: dict[str, float | None]
    published: dict[str, Any]
    notes: str

    @property
    def display_name(self) -> str:
        return self.label.replace("*", "").replace("  ", " ").strip()[:120]


@dataclass
class LoadOutcome:
    slug: str
    version_created: bool = False
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{len(self.created)} created", f"{len(self.updated)} updated", f"{self.unchanged} unchanged",
                 f"{len(self.removed)} removed"]
        return f"{self.slug}: {'version created; ' if self.version_created else ''}{', '.join(parts)}"


def read_manifest(path: Path = MANIFEST) -> list[VersionSpec]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ReportedFileError(f"{path}: no such file.") from None
    except json.JSONDecodeError as exc:
        raise ReportedFileError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg}).") from None
    entries = data.get("versions") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ReportedFileError(f"{path}: expected an object with a non-empty 'versions' list.")
    specs: list[VersionSpec] = []
    for i, entry in enumerate(entries):
        where = f"{path}: versions[{i}]"
        if not isinstance(entry, dict) or set(entry) != set(VERSION_KEYS):
            raise ReportedFileError(f"{where}: expected exactly the keys {', '.join(VERSION_KEYS)}.")
        lengths = entry["lengths"]
        if (not isinstance(lengths, list) or not lengths or lengths != sorted(set(lengths))
                or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in lengths)):
            raise ReportedFileError(f"{where}.lengths: give positive token counts, ascending, each once.")
        if entry["effective_length_rule"] not in EffectiveLengthRule.values:
            raise ReportedFileError(f"{where}.effective_length_rule: one of {', '.join(EffectiveLengthRule.values)}.")
        threshold = entry["effective_length_threshold"]
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold <= 100:
            raise ReportedFileError(f"{where}.effective_length_threshold: a number from 0 to 100.")
        tasks = entry["reported_tasks"]
        if not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) and t for t in tasks):
            raise ReportedFileError(f"{where}.reported_tasks: a non-empty list of task or task-group names.")
        try:
            _url(entry["source_url"])
        except ValidationError:
            raise ReportedFileError(f"{where}.source_url: not an http(s) URL.") from None
        for key in ("slug", "title", "benchmark", "rows", "notes"):
            if not isinstance(entry[key], str) or not entry[key].strip():
                raise ReportedFileError(f"{where}.{key}: a non-empty string.")
        specs.append(VersionSpec(
            slug=entry["slug"], title=entry["title"], benchmark=entry["benchmark"],
            rows_file=path.parent / entry["rows"], source_url=entry["source_url"], lengths=lengths,
            rule=entry["effective_length_rule"], threshold=float(threshold), reported_tasks=tasks,
            notes=entry["notes"]))
    slugs = [s.slug for s in specs]
    if len(set(slugs)) != len(slugs):
        raise ReportedFileError(f"{path}: a slug appears twice.")
    return specs


def _length(where: str, column: str, text: str) -> tuple[str, int] | None:
    if not text:
        return None
    parsed = published.parse_length(text)
    if parsed is None:
        raise ReportedFileError(f"{where}: {column} {text!r} is not a length such as 32K, >128K or <4K.")
    return parsed


def _score(where: str, column: str, text: str, *, allow: tuple[str, ...] = NOT_PUBLISHED) -> float | None:
    if text in allow:
        return None
    value = published.parse_score(text)
    if value is None or not 0 <= value <= 100:
        raise ReportedFileError(f"{where}: {column} {text!r} is not a score from 0 to 100.")
    return value


def parse_rows(text: str, spec: VersionSpec, name: str = "") -> list[ReportedRow]:
    """Every row of a version's CSV, checked; the first problem refuses the file with its line."""
    name = name or str(spec.rows_file)
    expected = [*ROW_COLUMNS, *spec.length_columns, *AGGREGATE_COLUMNS]
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header != expected:
        raise ReportedFileError(f"{name}: line 1: expected the header {','.join(expected)}, got "
                                f"{','.join(header or [])!r}.")
    found: list[ReportedRow] = []
    labels: dict[str, int] = {}
    for record in reader:
        line = reader.line_num
        where = f"{name}: line {line}"
        if not any(cell.strip() for cell in record):
            continue
        if len(record) != len(expected):
            raise ReportedFileError(f"{where}: {len(record)} fields, expected {len(expected)}.")
        cells = dict(zip(expected, (c.strip() for c in record), strict=True))
        label = cells["model"]
        if not label or len(label) > 200:
            raise ReportedFileError(f"{where}: the model must have 1 to 200 characters.")
        if label in labels:
            raise ReportedFileError(f"{where}: model {label!r} appears twice (first on line {labels[label]}).")
        labels[label] = line
        if cells["hf_repo"] and not (published.parse_length(cells["hf_repo"]) is None
                                     and "/" in cells["hf_repo"] and " " not in cells["hf_repo"]):
            raise ReportedFileError(f"{where}: hf_repo {cells['hf_repo']!r} is not a repo id such as owner/name.")
        if cells["link"]:
            try:
                _url(cells["link"])
            except ValidationError:
                raise ReportedFileError(f"{where}: link {cells['link']!r} is not an http(s) URL.") from None
        try:
            params = Decimal(cells["parameters_b"]) if cells["parameters_b"] else None
        except InvalidOperation:
            raise ReportedFileError(f"{where}: parameters_b {cells['parameters_b']!r} is not a number.") from None
        claimed = _length(where, "claimed_length", cells["claimed_length"])
        _length(where, "effective_length", cells["effective_length"])
        base = _score(where, "base_score", cells["base_score"], allow=("",))
        if spec.rule == EffectiveLengthRule.RELATIVE and base is None:
            raise ReportedFileError(f"{where}: base_score is needed: {spec.slug}'s effective length is relative "
                                    "to each model's base score.")
        _score(where, "threshold", cells["threshold"], allow=("",))
        scores = {str(n): _score(where, col, cells[col]) for n, col in zip(spec.lengths, spec.length_columns,
                                                                           strict=True)}
        if all(v is None for v in scores.values()):
            raise ReportedFileError(f"{where}: no score at any length.")
        for column in ("average", "wavg_inc", "wavg_dec"):
            _score(where, column, cells[column], allow=("", "TBD"))
        found.append(ReportedRow(
            line=line, label=label, hf_repo=cells["hf_repo"], link=cells["link"], parameters_b=params,
            claimed_context=claimed[1] if claimed else None, base_score=base, scores=scores,
            published={"claimed_length": cells["claimed_length"], "effective_length": cells["effective_length"],
                       "base_score": cells["base_score"], "threshold": cells["threshold"],
                       "scores": {str(n): cells[col] for n, col in zip(spec.lengths, spec.length_columns,
                                                                       strict=True)},
                       **{c: cells[c] for c in AGGREGATE_COLUMNS if c != "notes"}},
            notes=cells["notes"]))
    if not found:
        raise ReportedFileError(f"{name}: the file has a header but no rows.")
    return found


def _version(spec: VersionSpec) -> tuple[BenchmarkVersion, bool]:
    digest = versioning.hash_spec(spec.description())
    version = BenchmarkVersion.objects.filter(slug=spec.slug).first()
    if version is not None:
        if not version.is_reported or version.spec_hash != digest:
            raise ReportedFileError(
                f"version '{spec.slug}' exists and describes something else (a measured version, or other lengths, "
                "rule, tasks or source); a published version is frozen: give this table another slug.")
        if (version.title, version.notes) != (spec.title, spec.notes):
            version.title, version.notes = spec.title, spec.notes
            version.save(update_fields=["title", "notes"])
        return version, False
    version = BenchmarkVersion.objects.create(
        slug=spec.slug, title=spec.title, notes=spec.notes, status=VersionStatus.PUBLISHED, seed=0,
        lengths=spec.lengths, samples_per_cell=1, effective_length_threshold=spec.threshold,
        effective_length_rule=spec.rule, origin=VersionOrigin.REPORTED, benchmark_name=spec.benchmark,
        source_url=spec.source_url, reported_tasks=spec.reported_tasks, spec_hash=digest,
        published_at=timezone.now())
    return version, True


def _result_fields(row: ReportedRow, spec: VersionSpec) -> dict[str, Any]:
    return {"line": row.line, "source_url": spec.source_url, "link": row.link, "notes": row.notes,
            "base_score": row.base_score, "scores_by_length": row.scores, "published": row.published}


def _entry_fields(row: ReportedRow) -> dict[str, Any]:
    hf_link = row.link if row.link.startswith("https://huggingface.co/") else ""
    return {"display_name": row.display_name, "hf_repo": row.hf_repo, "parameters_b": row.parameters_b,
            "claimed_context": row.claimed_context, "model_card_url": hf_link,
            "paper_url": "" if hf_link else row.link}


@transaction.atomic
def load_version(spec: VersionSpec, parsed: list[ReportedRow]) -> LoadOutcome:
    version, created = _version(spec)
    outcome = LoadOutcome(spec.slug, version_created=created)
    existing = {r.label: r for r in ReportedResult.objects.filter(version=version).select_related(
        "submission__model")}
    for row in parsed:
        fields = _result_fields(row, spec)
        entry_fields = _entry_fields(row)
        result = existing.pop(row.label, None)
        if result is None:
            entry = ModelEntry.objects.create(kind=ModelKind.REPORTED, organisation="", **entry_fields)
            now = timezone.now()
            sub = Submission.objects.create(model=entry, version=version, status=SubmissionStatus.COMPLETED,
                                            queued_at=now, started_at=now, finished_at=now)
            ReportedResult.objects.create(version=version, submission=sub, label=row.label, **fields)
            rows.recompute(sub.pk)
            outcome.created.append(row.label)
            continue
        entry = result.submission.model
        same_entry = all(getattr(entry, k) == v for k, v in entry_fields.items())
        if same_entry and all(getattr(result, k) == v for k, v in fields.items() if k != "line"):
            if result.line != row.line:  # moved in the file, figures unchanged: its row stays as it is
                ReportedResult.objects.filter(pk=result.pk).update(line=row.line)
            outcome.unchanged += 1
            continue
        for key, value in entry_fields.items():
            setattr(entry, key, value)
        entry.model_key = ""  # recomputed from the repo id and name on save
        entry.save()
        for key, value in fields.items():
            setattr(result, key, value)
        result.save()
        rows.recompute(result.submission_id)
        outcome.updated.append(row.label)
    for label, result in existing.items():  # gone from the file
        entry = result.submission.model
        result.submission.delete()
        if not entry.submissions.exists():
            entry.delete()
        outcome.removed.append(label)
    return outcome


def load(manifest: Path = MANIFEST, *, only: list[str] | None = None) -> list[LoadOutcome]:
    """Check every file first, then load each version (each in its own transaction)."""
    specs = [s for s in read_manifest(manifest) if not only or s.slug in only]
    if only and len(specs) != len(set(only)):
        raise ReportedFileError(f"{manifest}: no version {', '.join(sorted(set(only) - {s.slug for s in specs}))}.")
    parsed: list[tuple[VersionSpec, list[ReportedRow]]] = []
    for spec in specs:
        try:
            text = spec.rows_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ReportedFileError(f"{spec.rows_file}: no such file (named by {spec.slug} in {manifest}).") from None
        parsed.append((spec, parse_rows(text, spec)))
    return [load_version(spec, found) for spec, found in parsed]

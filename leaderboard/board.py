"""The leaderboard table: filters from the URL, scores for the chosen task scope, ranks. No aggregation of
per-sample rows: entries are built from the cached LeaderboardRow table, ranked, and kept per version and scope by
leaderboard/board_snapshots.py; a request filters and sorts the stored entries."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from django.core.cache import cache
from django.db.models import Count, QuerySet
from django.db.models.fields.json import KeyTransform
from django.http import QueryDict

from evalworkers.kv import registry
from leaderboard import metrics
from leaderboard.demo_data import DEMO_ORGANISATION
from leaderboard.models import (
    BenchmarkVersion,
    EffectiveLengthRule,
    LeaderboardRow,
    ModelKind,
    TaskCategory,
    VersionStatus,
    Visibility,
)

SORTABLE = {"rank", "model", "claimed", "effective", "average", "wavg_inc", "wavg_dec", "params", "date"}
MAX_CURVES = 8
LANDING_CACHE_SECONDS = 600
PAGE_SIZE = 100  # rows per page of the table; a stored snapshot's head is exactly its first page


@dataclass(frozen=True)
class BoardFilters:
    """What the visitor asked for; every field comes from (and goes back to) the query string."""

    version: str = ""
    category: str = ""
    task: str = ""
    method: str = ""
    budget: float | None = None
    kind: str = ""
    min_params: float | None = None
    max_params: float | None = None
    q: str = ""
    sort: str = "rank"
    selected: tuple[int, ...] = ()
    errors: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def from_query(cls, query: QueryDict) -> BoardFilters:
        errors: list[str] = []

        def number(name: str, hint: str) -> float | None:
            raw = query.get(name, "").strip()
            if not raw:
                return None
            try:
                return float(raw)
            except ValueError:
                errors.append(f"{name} must be {hint}; ignored {raw[:20]!r}.")
                return None

        sort = query.get("sort", "rank")
        if not is_sortable(sort.lstrip("-")):
            errors.append(f"Unknown sort column {sort!r}; sorted by rank.")
            sort = "rank"
        selected = tuple(int(v) for v in query.getlist("m") if v.isdigit())[:MAX_CURVES]
        return cls(
            version=query.get("version", "").strip()[:40], category=query.get("category", "").strip()[:20],
            task=query.get("task", "").strip()[:60], method=query.get("method", "").strip()[:40],
            budget=number("budget", "a KV budget between 0 and 1, e.g. 0.25"), kind=query.get("kind", "").strip()[:12],
            min_params=number("min_params", "a number of billions of parameters, e.g. 7"),
            max_params=number("max_params", "a number of billions of parameters, e.g. 70"),
            q=query.get("q", "").strip()[:100],
            sort=sort, selected=selected, errors=tuple(errors),
        )

    def as_query(self, **changes: Any) -> str:
        """The query string of these filters with some changed (for sort links and shareable URLs)."""
        values = {**self.__dict__, **changes}
        query = QueryDict(mutable=True)
        for name in ("version", "category", "task", "method", "kind", "q", "sort"):
            if values[name] and not (name == "sort" and values[name] == "rank"):
                query[name] = values[name]
        for name in ("budget", "min_params", "max_params"):
            if values[name] is not None:
                query[name] = f"{values[name]:g}"
        query.setlist("m", [str(v) for v in values["selected"]])
        return query.urlencode()


@dataclass
class BoardRow:
    row: LeaderboardRow
    scores: dict[int, float | None]
    average: float | None
    wavg_inc: float | None
    wavg_dec: float | None
    effective_length: int | None
    ci_low: float | None
    ci_high: float | None
    threshold: float | None = None  # the score its lengths must reach (a reported row's own, under a relative rule)
    scoped: bool = False  # scores of one task or category: the row's CIs are for all tasks and do not apply
    rank: int | None = None
    rank_high: int | None = None

    @property
    def length_cells(self) -> list[tuple[float | None, str]]:
        """(score, why it is missing) per length, in the version's order."""
        notes = self.row.length_notes or {}
        return [(score, notes.get(str(length), "")) for length, score in self.scores.items()]

    @property
    def rank_label(self) -> str:
        if self.rank is None:
            return "–"
        return str(self.rank) if self.rank_high in (None, self.rank) else f"{self.rank}–{self.rank_high}"

    @classmethod
    def from_entry(cls, entry: Entry, lengths: Sequence[int]) -> BoardRow:
        """The row to render from a stored entry (see `Entry`); its LeaderboardRow is rebuilt, not read."""
        fields = dict(entry["row"])
        if fields.get("completed_at"):
            fields["completed_at"] = datetime.fromisoformat(fields["completed_at"])
        return cls(row=LeaderboardRow(**fields), scores=dict(zip(lengths, entry["scores"], strict=True)),
                   **{name: entry[name] for name in ENTRY_FIGURES})


# What a board entry keeps of its LeaderboardRow: everything the page, the API and the CSV show of it. A field at
# its model default is left out (the rebuilt LeaderboardRow takes the default again), which halves the entries.
ROW_FIELDS = ("id", "submission_id", "model_name", "organisation", "model_kind", "parameters_b", "claimed_context",
              "is_baseline", "visibility", "public_note", "method", "budget", "complete", "partial_reason",
              "lengths_verified", "disagrees", "reported", "length_notes", "ci_method", "completed_at",
              "scores_by_output")
_ROW_DEFAULTS = {f.attname: f.get_default() for f in LeaderboardRow._meta.concrete_fields
                 if f.attname in ROW_FIELDS and f.attname != "id"}
# What the scope computes: the figures a BoardRow carries beside its row and scores.
ENTRY_FIGURES = ("average", "wavg_inc", "wavg_dec", "effective_length", "ci_low", "ci_high", "threshold", "scoped",
                 "rank", "rank_high")
# One ranked row of the board as JSON: {"row": {ROW_FIELDS not at their default}, "scores": [score per length],
# ENTRY_FIGURES...}.
Entry = dict[str, Any]


def entry_row(record: dict[str, Any]) -> dict[str, Any]:
    """The ROW_FIELDS of a record that differ from the model's defaults, JSON-ready."""
    row = {name: record[name] for name in ROW_FIELDS
           if name not in _ROW_DEFAULTS or record[name] != _ROW_DEFAULTS[name]}
    if row.get("completed_at"):
        row["completed_at"] = row["completed_at"].isoformat()
    return row


@dataclass(frozen=True)
class Scope:
    """Which scores the board ranks: all tasks (the stored aggregates), one category's or one task's."""

    kind: str = "all"  # "all", "category" or "task"
    name: str = ""

    @classmethod
    def of(cls, f: BoardFilters) -> Scope:
        if f.task:
            return cls("task", f.task)
        if f.category in TaskCategory.values:
            return cls("category", f.category)
        return cls()

    @classmethod
    def parse(cls, key: str) -> Scope:
        kind, _, name = key.partition(":")
        return cls(kind, name) if name else cls()

    @property
    def key(self) -> str:
        """How a stored snapshot names it: "", "category:<name>" or "task:<key>"."""
        return f"{self.kind}:{self.name}" if self.name else ""

    @property
    def column(self) -> str:
        """What `records` reads this scope's scores into: a LeaderboardRow JSON field (all tasks, the categories)
        or, for a task, that task's key of task_scores alone (the whole column is the heaviest of a row)."""
        return {"all": "scores_by_length", "category": "category_scores"}.get(self.kind, f"scope_task_{self.name}")

    def scores_in(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """The scope's {"<length>": score} of a record from `records`; None when the row has no such task."""
        column = record[self.column]
        return (column or {}).get(self.name) if self.kind == "category" else column


def records(version: BenchmarkVersion, scopes: Sequence[Scope]) -> list[dict[str, Any]]:
    """The visible rows as dicts of the stored aggregates and the scopes' scores (`Scope.column`), each with its
    entry row (``"row"``, see `entry_row`); one query for any number of scopes."""
    tasks = {s.column: KeyTransform(s.name, "task_scores") for s in scopes if s.kind == "task"}
    columns = sorted({s.column for s in scopes if s.kind != "task"})
    found = list(visible_rows(version).annotate(**tasks).values(
        *ROW_FIELDS, *columns, *tasks, "average", "wavg_inc", "wavg_dec", "effective_length", "ci_low", "ci_high"))
    for record in found:
        record["row"] = entry_row(record)
    return found


def ranked_entries(version: BenchmarkVersion, records: Sequence[dict[str, Any]], scope: Scope) -> list[Entry]:
    """Rank `records` (from `records`) in the scope and return them as entries in rank order.

    All tasks: the stored aggregates. One task or category: average, weighted averages and effective length
    recomputed from the scope's scores (leaderboard/metrics.py), without intervals (the row's are for all tasks).
    """
    lengths = list(version.lengths)
    entries: list[Entry] = []
    for record in records:
        source = scope.scores_in(record)
        if not isinstance(source, dict):
            continue
        row = record["row"]
        values = [source.get(str(n)) for n in lengths]
        entry: Entry = {"row": row, "scores": values, "rank": None, "rank_high": None}
        if scope.kind == "all":  # the cached row already holds every aggregate
            reported = record["reported"] or {}
            entry.update({name: record[name] for name in ("average", "wavg_inc", "wavg_dec", "effective_length",
                                                          "ci_low", "ci_high")},
                         scoped=False,
                         threshold=reported.get("threshold") if reported else version.effective_length_threshold)
        else:
            complete = all(v is not None for v in values)
            inc, dec = metrics.weighted_averages(values) if complete else (None, None)
            entry.update(average=sum(values) / len(values) if complete else None, wavg_inc=inc, wavg_dec=dec,
                         effective_length=metrics.effective_length(dict(zip(lengths, values, strict=True)),
                                                                   version.effective_length_threshold),
                         ci_low=None, ci_high=None, scoped=True, threshold=version.effective_length_threshold)
        entries.append(entry)
    return _ranked(entries)


def reranked(entries: Sequence[Entry]) -> list[Entry]:
    """Copies of `entries` ranked among themselves, in rank order: the board ranks the rows a visitor's filters
    keep, not the whole version."""
    return _ranked([dict(e) for e in entries])


def _ranked(entries: list[Entry]) -> list[Entry]:
    """`entries` given their ranks (Chatbot Arena style ranges, leaderboard/metrics.py) and in rank order."""
    if not entries:
        return entries
    frame = pd.DataFrame({
        "id": range(len(entries)),
        "average": [e["average"] for e in entries],
        "ci_low": [e["ci_low"] if e["ci_low"] is not None else e["average"] for e in entries],
        "ci_high": [e["ci_high"] if e["ci_high"] is not None else e["average"] for e in entries],
    }, dtype="float64")
    ranked = metrics.rank_rows(frame)
    for i, rank, high in zip(ranked["id"], ranked["rank"], ranked["rank_high"], strict=True):
        entry = entries[int(i)]
        entry["rank"] = None if pd.isna(rank) else int(rank)
        entry["rank_high"] = None if pd.isna(high) else int(high)
    return sorted(entries, key=SORT_KEYS["rank"])


def row_value(row: dict[str, Any], name: str) -> Any:
    """A field of an entry's row, its model default where the entry leaves it out."""
    return row[name] if name in row else _ROW_DEFAULTS.get(name)


def keeps(f: BoardFilters, row: dict[str, Any]) -> bool:
    """Whether an entry's row passes the visitor's row filters (method, budget, kind, parameters, search)."""
    if f.method and row_value(row, "method") != f.method:
        return False
    if f.budget is not None and row_value(row, "budget") != f.budget:
        return False
    if f.kind in ModelKind.values and row_value(row, "model_kind") != f.kind:
        return False
    params = row_value(row, "parameters_b")
    if f.min_params is not None and (params is None or params < f.min_params):
        return False
    if f.max_params is not None and (params is None or params > f.max_params):
        return False
    needle = f.q.casefold()
    return not needle or any(needle in (row_value(row, name) or "").casefold()
                             for name in ("model_name", "organisation"))


def narrows_rows(f: BoardFilters) -> bool:
    """Whether the filters drop rows (and so the ranks are recomputed among those that remain)."""
    return bool(f.method or f.budget is not None or f.kind in ModelKind.values or f.min_params is not None
                or f.max_params is not None or f.q)


class Board(Sequence[BoardRow]):
    """The rows a visitor asked for, in display order. Only what is read becomes a BoardRow (a page of the table,
    the curves); with `head` (the first entries) and `count` given, the rest is loaded only when read past it."""

    def __init__(self, version: BenchmarkVersion, count: int, head: list[Entry],
                 load: Callable[[], list[Entry]]) -> None:
        self.lengths = list(version.lengths)
        self._count = count
        self._head = head
        self._load = load
        self._all: list[Entry] | None = None

    @classmethod
    def of(cls, version: BenchmarkVersion, entries: list[Entry]) -> Board:
        return cls(version, len(entries), entries, lambda: entries)

    def entries(self) -> list[Entry]:
        if self._all is None:
            self._all = self._head if len(self._head) >= self._count else self._load()
        return self._all

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index):  # type: ignore[override]  # int or slice, as a list
        if isinstance(index, slice):
            start, stop, step = index.indices(self._count)
            source = self._head if stop <= len(self._head) else self.entries()
            return [BoardRow.from_entry(e, self.lengths) for e in source[start:stop:step]]
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError(index)
        source = self._head if index < len(self._head) else self.entries()
        return BoardRow.from_entry(source[index], self.lengths)

    def __iter__(self) -> Iterator[BoardRow]:
        return (BoardRow.from_entry(e, self.lengths) for e in self.entries())


def pick_version(slug: str) -> BenchmarkVersion | None:
    """The version named by ``slug``; with none named, the one the front page shows (``landing_stamp``), so the
    API and the downloads answer for what a visitor sees."""
    versions = BenchmarkVersion.objects.browsable()
    if slug:
        return versions.filter(slug=slug).first()
    stamp = landing_stamp()
    return versions.filter(pk=stamp[0]).first() if stamp else None


def version_stamp(slug: str) -> tuple[int, object] | None:
    """(pk, board_revision) of the version `pick_version` would choose: all a cached page needs."""
    versions = BenchmarkVersion.objects.browsable().order_by("-is_default", "-created_at")
    if slug:
        versions = versions.filter(slug=slug)
    return versions.values_list("pk", "board_revision").first()


def real_rows() -> QuerySet[LeaderboardRow]:
    """Visible rows of real models: neither hidden nor the fictional demo data."""
    return LeaderboardRow.objects.exclude(visibility=Visibility.HIDDEN).exclude(organisation=DEMO_ORGANISATION)


def _browsable_state() -> str:
    """What the front page's choices depend on besides rows: each browsable version's revision, default flag and
    status (one small query); a cache key that changes whenever any of them, or any version's rows, change."""
    state = tuple(BenchmarkVersion.objects.browsable().order_by("pk").values_list(
        "pk", "board_revision", "is_default", "status"))
    return hashlib.sha256(repr(state).encode()).hexdigest()


def _kept(name: str, state: str, compute: Callable[[], Any]) -> Any:
    key = f"{name}:{state}"
    kept = cache.get(key)
    if kept is None:
        kept = (compute(),)
        cache.set(key, kept, LANDING_CACHE_SECONDS)
    return kept[0]


def real_models_by_version(state: str | None = None) -> dict[int, int]:
    """{version id: rows of real models on it} over the published and retired versions, kept in the cache until
    a version's rows or flags change (`_browsable_state`): counting every row is the front page's slowest query."""
    return _kept("real-rows", state or _browsable_state(), lambda: dict(
        real_rows().filter(version__status__in=[VersionStatus.PUBLISHED, VersionStatus.RETIRED])
        .values_list("version_id").annotate(n=Count("pk")).values_list("version_id", "n")))


def landing_stamp() -> tuple[int, object] | None:
    """The version the front page shows when none is asked for: the default version once it has a real model on
    it, else the version with the most real models (a reported version on a fresh install), else the default.
    Kept in the cache like `real_models_by_version`, so a warm front page counts no rows."""
    state = _browsable_state()
    return _kept("landing", state, lambda: _landing_stamp(real_models_by_version(state)))


def _landing_stamp(counts: dict[int, int]) -> tuple[int, object] | None:
    default = version_stamp("")
    if default is not None and counts.get(default[0]):
        return default
    if not counts:
        return default
    busiest = min(counts, key=lambda version_id: (-counts[version_id], version_id))
    return BenchmarkVersion.objects.filter(pk=busiest).values_list("pk", "board_revision").first()


def visible_rows(version: BenchmarkVersion) -> QuerySet[LeaderboardRow]:
    return LeaderboardRow.objects.filter(version=version).exclude(visibility=Visibility.HIDDEN)


SORT_KEYS = {
    "rank": lambda e: (e["rank"] is None, e["rank"] or 0, -(e["average"] or 0)),
    "model": lambda e: row_value(e["row"], "model_name").lower(),
    "claimed": lambda e: row_value(e["row"], "claimed_context") or 0,
    "effective": lambda e: e["effective_length"] or 0,
    "average": lambda e: e["average"] if e["average"] is not None else -1,
    "wavg_inc": lambda e: e["wavg_inc"] if e["wavg_inc"] is not None else -1,
    "wavg_dec": lambda e: e["wavg_dec"] if e["wavg_dec"] is not None else -1,
    "params": lambda e: row_value(e["row"], "parameters_b") or 0,
    "date": lambda e: row_value(e["row"], "completed_at") or "",  # ISO 8601 in UTC: sorts as the time does
}
DESCENDING_BY_DEFAULT = {"claimed", "effective", "average", "wavg_inc", "wavg_dec", "params", "date"}


def is_sortable(name: str) -> bool:
    """A named column, or "len<N>" for the score at length N (e.g. len131072: who holds up best at 128K)."""
    return name in SORTABLE or (name.startswith("len") and name[3:].isdigit())


def sorted_entries(entries: list[Entry], sort: str, lengths: Sequence[int]) -> list[Entry]:
    """Entries (in rank order) re-ordered by a sortable column; ties keep the rank order."""
    name = sort.lstrip("-")
    if name == "rank" and not sort.startswith("-"):
        return entries
    if name.startswith("len"):
        length = int(name[3:])
        at = list(lengths).index(length) if length in lengths else None
        key = lambda e: e["scores"][at] if at is not None and e["scores"][at] is not None else -1  # noqa: E731
        return sorted(entries, key=key, reverse=not sort.startswith("-"))
    descending = (name in DESCENDING_BY_DEFAULT) != sort.startswith("-")
    return sorted(entries, key=SORT_KEYS[name], reverse=descending)


def threshold_line(version: BenchmarkVersion) -> float | None:
    """The score line drawn on the curves: the threshold, unless it is relative to each model's own score."""
    return None if version.effective_length_rule == EffectiveLengthRule.RELATIVE else version.effective_length_threshold


def curve_rows(board: Board, selected: tuple[int, ...]) -> list[dict[str, Any]]:
    """The rows drawn above the table: those selected in the URL, else the top of the table; with their
    intervals by length where the scores are the rows' own (all tasks)."""
    chosen = ([BoardRow.from_entry(e, board.lengths) for e in board.entries() if e["row"]["id"] in selected]
              if selected else board[:MAX_CURVES])
    intervals = dict(LeaderboardRow.objects.filter(pk__in=[b.row.pk for b in chosen if not b.scoped])
                     .values_list("pk", "ci_by_length"))
    return [{"label": label(b.row), "scores_by_length": b.scores, "ci_by_length": intervals.get(b.row.pk) or {},
             "scores_by_output": b.row.scores_by_output} for b in chosen]


def label(row: LeaderboardRow) -> str:
    """The row's name: the model, and for a compressed cache the KV point as the registry labels it."""
    if row.method == "full":
        return row.model_name
    return f"{row.model_name} · {registry.point_label(row.method, row.budget)}"

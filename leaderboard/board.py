"""The leaderboard table: filters from the URL, scores for the chosen task scope, ranks. No aggregation of
per-sample rows: everything is read from the cached LeaderboardRow table."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd
from django.core.cache import cache
from django.db.models import Count, Q, QuerySet
from django.http import QueryDict

from evalworkers.kv import registry
from leaderboard import metrics
from leaderboard.demo_data import DEMO_ORGANISATION
from leaderboard.models import (
    BenchmarkVersion,
    LeaderboardRow,
    ModelKind,
    TaskCategory,
    VersionStatus,
    Visibility,
)

SORTABLE = {"rank", "model", "claimed", "effective", "average", "wavg_inc", "wavg_dec", "params", "date"}
MAX_CURVES = 8
BOARD_CACHE_SECONDS = 600


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


def pick_version(slug: str) -> BenchmarkVersion | None:
    """The version named by ``slug``; with none named, the one the front page shows (``landing_stamp``), so the
    API and the downloads answer for what a visitor sees."""
    versions = BenchmarkVersion.objects.browsable()
    if slug:
        return versions.filter(slug=slug).first()
    stamp = landing_stamp()
    return versions.filter(pk=stamp[0]).first() if stamp else None


def version_stamp(slug: str) -> tuple[int, object] | None:
    """(pk, board_changed_at) of the version `pick_version` would choose: all a cached page needs."""
    versions = BenchmarkVersion.objects.browsable().order_by("-is_default", "-created_at")
    if slug:
        versions = versions.filter(slug=slug)
    return versions.values_list("pk", "board_changed_at").first()


def real_rows() -> QuerySet[LeaderboardRow]:
    """Visible rows of real models: neither hidden nor the fictional demo data."""
    return LeaderboardRow.objects.exclude(visibility=Visibility.HIDDEN).exclude(organisation=DEMO_ORGANISATION)


def landing_stamp() -> tuple[int, object] | None:
    """The version the front page shows when none is asked for: the default version once it has a real model on
    it, else the version with the most real models (a reported version on a fresh install), else the default."""
    default = version_stamp("")
    if default is not None and real_rows().filter(version_id=default[0]).exists():
        return default
    busiest = (real_rows().filter(version__status__in=[VersionStatus.PUBLISHED, VersionStatus.RETIRED])
               .values("version_id").annotate(n=Count("pk")).order_by("-n", "version_id").first())
    if busiest is None:
        return default
    return BenchmarkVersion.objects.filter(pk=busiest["version_id"]).values_list("pk", "board_changed_at").first()


def visible_rows(version: BenchmarkVersion) -> QuerySet[LeaderboardRow]:
    return LeaderboardRow.objects.filter(version=version).exclude(visibility=Visibility.HIDDEN)


def filtered(rows: QuerySet[LeaderboardRow], f: BoardFilters) -> QuerySet[LeaderboardRow]:
    if f.method:
        rows = rows.filter(method=f.method)
    if f.budget is not None:
        rows = rows.filter(budget=f.budget)
    if f.kind in ModelKind.values:
        rows = rows.filter(model_kind=f.kind)
    if f.min_params is not None:
        rows = rows.filter(parameters_b__gte=f.min_params)
    if f.max_params is not None:
        rows = rows.filter(parameters_b__lte=f.max_params)
    if f.q:
        rows = rows.filter(Q(model_name__icontains=f.q) | Q(organisation__icontains=f.q))
    return rows


def _scope(row: LeaderboardRow, f: BoardFilters) -> dict[str, Any] | None:
    """The per-length scores of the task scope asked for; None when the row has no such task or category."""
    if f.task:
        source = row.task_scores.get(f.task)
    elif f.category in TaskCategory.values:
        source = row.category_scores.get(f.category)
    else:
        source = row.scores_by_length
    return source


def cached_build(version: BenchmarkVersion, f: BoardFilters) -> list[BoardRow]:
    """`build`, kept until any row of the version changes (leaderboard/rows.py stamps the version)."""
    key = "board:" + hashlib.sha256(repr((version.pk, version.board_changed_at,
                                          f.as_query(sort="rank", selected=()))).encode()).hexdigest()
    rows = cache.get(key)
    if rows is None:
        rows = build(version, replace(f, sort="rank"))
        cache.set(key, rows, BOARD_CACHE_SECONDS)
    return _sorted(rows, f.sort)


def build(version: BenchmarkVersion, f: BoardFilters) -> list[BoardRow]:
    lengths = list(version.lengths)
    all_tasks = not (f.task or f.category in TaskCategory.values)
    board: list[BoardRow] = []
    rows = filtered(visible_rows(version), f)
    if all_tasks:
        rows = rows.defer("task_scores", "category_scores")  # the heavy JSON is only read for a task scope
    for row in rows:
        source = _scope(row, f)
        if source is None:
            continue
        scores = {n: source.get(str(n)) for n in lengths}
        if all_tasks:  # the cached row already holds every aggregate
            board.append(BoardRow(row=row, scores=scores, average=row.average, wavg_inc=row.wavg_inc,
                                  wavg_dec=row.wavg_dec, effective_length=row.effective_length,
                                  ci_low=row.ci_low, ci_high=row.ci_high,
                                  threshold=row.threshold if row.reported else version.effective_length_threshold))
            continue
        values = [scores[n] for n in lengths]
        complete = all(v is not None for v in values)
        inc, dec = metrics.weighted_averages(values) if complete else (None, None)
        board.append(BoardRow(
            row=row, scores=scores, average=sum(values) / len(values) if complete else None, wavg_inc=inc,
            wavg_dec=dec, effective_length=metrics.effective_length(scores, version.effective_length_threshold),
            ci_low=None, ci_high=None, scoped=True, threshold=version.effective_length_threshold,
        ))
    _rank(board)
    return _sorted(board, f.sort)


def _rank(board: list[BoardRow]) -> None:
    if not board:
        return
    frame = pd.DataFrame({
        "id": range(len(board)),
        "average": [b.average for b in board],
        "ci_low": [b.ci_low if b.ci_low is not None else b.average for b in board],
        "ci_high": [b.ci_high if b.ci_high is not None else b.average for b in board],
    }, dtype="float64")
    ranked = metrics.rank_rows(frame)
    for i, rank, high in zip(ranked["id"], ranked["rank"], ranked["rank_high"], strict=True):
        item = board[int(i)]
        item.rank = None if pd.isna(rank) else int(rank)
        item.rank_high = None if pd.isna(high) else int(high)


SORT_KEYS = {
    "rank": lambda b: (b.rank is None, b.rank or 0, -(b.average or 0)),
    "model": lambda b: b.row.model_name.lower(),
    "claimed": lambda b: b.row.claimed_context or 0,
    "effective": lambda b: b.effective_length or 0,
    "average": lambda b: b.average if b.average is not None else -1,
    "wavg_inc": lambda b: b.wavg_inc if b.wavg_inc is not None else -1,
    "wavg_dec": lambda b: b.wavg_dec if b.wavg_dec is not None else -1,
    "params": lambda b: b.row.parameters_b or 0,
    "date": lambda b: b.row.completed_at.timestamp() if b.row.completed_at else 0,
}
DESCENDING_BY_DEFAULT = {"claimed", "effective", "average", "wavg_inc", "wavg_dec", "params", "date"}


def is_sortable(name: str) -> bool:
    """A named column, or "len<N>" for the score at length N (e.g. len131072: who holds up best at 128K)."""
    return name in SORTABLE or (name.startswith("len") and name[3:].isdigit())


def _sorted(board: list[BoardRow], sort: str) -> list[BoardRow]:
    name = sort.lstrip("-")
    if name.startswith("len"):
        length = int(name[3:])
        key = lambda b: b.scores.get(length) if b.scores.get(length) is not None else -1  # noqa: E731
        return sorted(board, key=key, reverse=not sort.startswith("-"))
    descending = (name in DESCENDING_BY_DEFAULT) != sort.startswith("-")
    return sorted(board, key=SORT_KEYS[name], reverse=descending)


def curve_rows(board: list[BoardRow], selected: tuple[int, ...]) -> list[dict[str, Any]]:
    """The rows drawn above the table: those selected in the URL, else the top of the table."""
    chosen = [b for b in board if b.row.pk in selected] if selected else board[:MAX_CURVES]
    return [{"label": label(b.row), "scores_by_length": b.scores,
             "ci_by_length": b.row.ci_by_length if not b.scoped else {},
             "scores_by_output": b.row.scores_by_output} for b in chosen]


def label(row: LeaderboardRow) -> str:
    """The row's name: the model, and for a compressed cache the KV point as the registry labels it."""
    if row.method == "full":
        return row.model_name
    return f"{row.model_name} · {registry.point_label(row.method, row.budget)}"

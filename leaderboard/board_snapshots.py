"""A version's board ranked ahead of the request, and kept current without races.

Ranking thousands of LeaderboardRows and drawing their curves takes seconds; a page that did it on the first request
after every change made a visitor wait. So the process that changes a board (the worker that completes a
submission, the admin or owner who hides one, an import) rebuilds the version's snapshots once its transaction has
committed (`schedule`), for all tasks and for each task category (`eager_scopes`). A request reads the snapshot of
its scope (`board_for`): the first page and the top curves come from two short JSON texts whatever the size of the
board, and other sorts and filters work on the stored entries without touching the rows.

Races. Every change of a version's rows increments `BenchmarkVersion.board_revision` in the same transaction
(leaderboard/rows.py). A snapshot is built from rows read after its revision was read, so it holds that revision's
rows or newer ones, never older; it is stored only over an older revision (a conditional update), so of two
rebuilds finishing out of order the newer one stays. A request whose version is at a newer revision than the stored
snapshot (a rebuild still running, or one that failed) builds the snapshot itself and stores it the same way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import orjson
from django.core.paginator import Page
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

from leaderboard import board, charts, long_generation
from leaderboard.board import Board, BoardFilters, Entry, Scope
from leaderboard.models import BenchmarkVersion, BoardSnapshot, TaskCategory

logger = logging.getLogger(__name__)
_local = threading.local()


def eager_scopes(version: BenchmarkVersion) -> list[Scope]:
    """The scopes rebuilt on every change: all tasks, and each category the version has tasks in (a task's own
    board is built on its first request after a change)."""
    categories = {t.category for t in version.tasks.all()}
    return [Scope()] + [Scope("category", c) for c in TaskCategory.values if c in categories]


def build(version: BenchmarkVersion, scopes: list[Scope]) -> list[BoardSnapshot]:
    """The scopes' boards at `version.board_revision` (or newer rows), ranked and serialised from one read of the
    rows; not saved.

    Shapes: entries_json and head_json are JSON lists of `board.Entry` in rank order (head: the first
    board.PAGE_SIZE, head_html its table rows); options_json {"methods": [str], "budgets": [float]} of all
    visible rows; curves_json the Plotly figure of the top `board.MAX_CURVES` entries; build_ms the scope's
    share of the time (measured).
    """
    started = time.perf_counter()
    records = board.records(version, scopes)
    read_ms = (time.perf_counter() - started) * 1000
    return [_snapshot(version, scope, records, read_ms / len(scopes)) for scope in scopes]


def _snapshot(version: BenchmarkVersion, scope: Scope, records: list[dict], read_ms: float) -> BoardSnapshot:
    started = time.perf_counter()
    entries = board.ranked_entries(version, records, scope)
    top = board.curve_rows(Board.of(version, entries[:board.MAX_CURVES]), ())
    figure = (charts.degradation_figure(top, list(version.lengths), board.threshold_line(version)) if top
              else charts.empty_figure("No completed submissions match these filters yet."))
    options = {"methods": sorted({r["method"] for r in records}),
               "budgets": sorted({r["budget"] for r in records}, reverse=True)}
    head = entries[:board.PAGE_SIZE]
    return BoardSnapshot(
        version=version, scope=scope.key, revision=version.board_revision, row_count=len(entries),
        head_json=_json(head), head_html=rows_html(Board.of(version, head)[:]), entries_json=_json(entries),
        options_json=_json(options), curves_json=charts.figure_json(figure),
        build_ms=round(read_ms + (time.perf_counter() - started) * 1000, 1),
    )


_STORED_FIELDS = ("revision", "row_count", "head_json", "head_html", "entries_json", "options_json", "curves_json",
                  "build_ms")


def store(snapshot: BoardSnapshot) -> bool:
    """Keep `snapshot` unless one of the same or a newer revision is stored; True when it was kept."""
    fields = {name: getattr(snapshot, name) for name in _STORED_FIELDS}
    stored = BoardSnapshot.objects.filter(version_id=snapshot.version_id, scope=snapshot.scope)
    for _ in range(2):  # a concurrent first insert makes the second pass an update
        if stored.filter(revision__lt=snapshot.revision).update(**fields):
            return True
        if stored.exists():
            return False
        try:
            with transaction.atomic():
                snapshot.save(force_insert=True)
            return True
        except IntegrityError:
            continue
    return False


def current(version: BenchmarkVersion, scope: Scope) -> BoardSnapshot:
    """The stored snapshot of the scope if it is at the version's revision or newer, else one built now (and
    stored). Its entries are read from the database only when asked for (`entries_of`)."""
    snapshot = (BoardSnapshot.objects.filter(version=version, scope=scope.key).defer("entries_json")
                .order_by().first())
    if snapshot is not None and snapshot.revision >= version.board_revision:
        return snapshot
    snapshot = build(version, [scope])[0]
    store(snapshot)
    return snapshot


def entries_of(snapshot: BoardSnapshot) -> list[Entry]:
    return orjson.loads(snapshot.entries_json)


def rebuild(version_id: int) -> list[BoardSnapshot]:
    """Build and store the eager scopes of the version at its current revision; returns those kept. Scopes
    already stored at that revision are left alone (many changes in one transaction schedule many rebuilds)."""
    version = BenchmarkVersion.objects.filter(pk=version_id).first()
    if version is None:
        return []
    fresh = set(BoardSnapshot.objects.filter(version=version, revision__gte=version.board_revision)
                .values_list("scope", flat=True))
    stale = [scope for scope in eager_scopes(version) if scope.key not in fresh]
    if not stale:
        return []
    kept = [s for s in build(version, stale) if store(s)]
    logger.info("Board of %s rebuilt at revision %s: %s", version.slug, version.board_revision,
                ", ".join(f"{s.scope or 'all'} {s.row_count} rows in {s.build_ms:.0f} ms" for s in kept) or "none")
    return kept


def schedule(version_id: int) -> None:
    """Rebuild the version's board once the current transaction commits (at once outside one); inside
    `deferred()`, once when it ends. A failed rebuild is logged: requests then build what they read."""
    pending = getattr(_local, "pending", None)
    if pending is not None:
        pending.add(version_id)
        return
    transaction.on_commit(lambda: rebuild(version_id), robust=True)


@contextmanager
def deferred() -> Iterator[None]:
    """Within it, board changes (many submissions completed or loaded at once) rebuild each version once, at the
    end, instead of once per change."""
    if getattr(_local, "pending", None) is not None:  # nested: the outermost one rebuilds
        yield
        return
    _local.pending = set()
    try:
        yield
    finally:
        pending, _local.pending = _local.pending, None
        for version_id in sorted(pending):
            schedule(version_id)


def board_for(version: BenchmarkVersion, f: BoardFilters) -> tuple[Board, BoardSnapshot]:
    """The board the filters ask for, and the snapshot it comes from (for its options and top curves).

    Unfiltered in rank order, the first page is the snapshot's head; other pages, sorts and filters read its
    entries. Filters that drop rows rank the remaining ones among themselves."""
    snapshot = current(version, Scope.of(f))
    narrowed = board.narrows_rows(f)
    if not narrowed and f.sort == "rank":
        return Board(version, snapshot.row_count, orjson.loads(snapshot.head_json),
                     lambda: entries_of(snapshot)), snapshot
    entries = entries_of(snapshot)
    if narrowed:
        entries = board.reranked([e for e in entries if board.keeps(f, e["row"])])
    return Board.of(version, board.sorted_entries(entries, f.sort, list(version.lengths))), snapshot


def rows_html(rows: list[board.BoardRow]) -> str:
    """The table rows of a page of the board (also rendered ahead for a snapshot's first page)."""
    return render_to_string("leaderboard/_board_rows.html", {"rows": rows})


def page_rows_html(rows: Board, page: Page, f: BoardFilters, snapshot: BoardSnapshot) -> SafeString:
    """The rows of the page shown: the snapshot's own for the first page of the unfiltered board in rank order."""
    if page.number == 1 and not board.narrows_rows(f) and f.sort == "rank":
        return mark_safe(snapshot.head_html)  # rendered by rows_html, autoescaped, when the snapshot was built
    return mark_safe(rows_html(list(page.object_list)))


def curves_div(version: BenchmarkVersion, rows: Board, f: BoardFilters, snapshot: BoardSnapshot) -> str:
    """The degradation chart above the table: the snapshot's own for the unfiltered board in rank order, else
    drawn for the rows shown (those selected in the URL, else the top of the table)."""
    if not f.selected and not board.narrows_rows(f) and f.sort == "rank":
        return charts.div_for(snapshot.curves_json)
    curves = board.curve_rows(rows, f.selected)
    figure = (charts.degradation_figure(curves, list(version.lengths), board.threshold_line(version)) if curves
              else charts.empty_figure("No completed submissions match these filters yet."))
    return charts.to_div(figure)


def output_curves_div(version: BenchmarkVersion, rows: Board, f: BoardFilters) -> str:
    """The second chart, score against the required reply length, for a version with long-generation tasks
    ("" otherwise): the same rows as the curves above the table, from their stored entries."""
    outputs = long_generation.output_lengths(version)
    if not outputs:
        return ""
    return charts.to_div(charts.output_degradation_figure(board.curve_rows(rows, f.selected), outputs))


def options(snapshot: BoardSnapshot) -> dict[str, list]:
    return orjson.loads(snapshot.options_json)


def _json(value: object) -> str:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()

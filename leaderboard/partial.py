"""What a submission that has not completed has measured so far, for its model page.

Only finished cells carry a score (0-100, with the cell's Wilson interval and its number of scored samples); a
cell still running shows its progress. Nothing is aggregated: like a partial leaderboard row, an unfinished grid has
no per-length score, average, interval or effective length, because averaging the cells that happened to finish
would say more than was measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from leaderboard.models import Cell, CellStatus, Submission

FULL_CACHE = ("full", 1.0)


@dataclass(frozen=True)
class PartialTask:
    """One task's cells of the full cache, in the version's length order (None: no cell at that length yet)."""

    key: str
    cells: tuple[Cell | None, ...]


@dataclass(frozen=True)
class PartialResults:
    lengths: tuple[int, ...]
    tasks: tuple[PartialTask, ...]
    cells_total: int
    cells_finished: int
    cells_scored: int
    other_points_scored: int = 0
    task_scores: dict[str, dict[str, float | None]] = field(default_factory=dict)

    @property
    def has_scores(self) -> bool:
        return self.cells_scored > 0


def is_scored(cell: Cell) -> bool:
    return cell.status == CellStatus.COMPLETED and cell.score is not None


def partial_results(sub: Submission) -> PartialResults:
    """The full cache's cells by task and length, and how much of the whole grid has finished."""
    lengths = tuple(int(n) for n in sub.version.lengths)
    cells = list(sub.cells.select_related("task").order_by("task__key", "length", "method", "-budget"))
    full = {(c.task.key, c.length): c for c in cells if (c.method, c.budget) == FULL_CACHE}
    keys = list(sub.version.tasks.order_by("key").values_list("key", flat=True))
    tasks = tuple(PartialTask(key=k, cells=tuple(full.get((k, n)) for n in lengths)) for k in keys)
    scores = {t.key: {str(n): (c.score if c is not None and is_scored(c) else None) for n, c in zip(
        lengths, t.cells, strict=True)} for t in tasks}
    scored_full = sum(1 for c in full.values() if is_scored(c))
    return PartialResults(
        lengths=lengths, tasks=tasks, cells_total=len(cells) or sub.cells_total,
        cells_finished=sum(1 for c in cells if c.status in CellStatus.ended()), cells_scored=scored_full,
        other_points_scored=sum(1 for c in cells if (c.method, c.budget) != FULL_CACHE and is_scored(c)),
        task_scores=scores if scored_full else {},
    )

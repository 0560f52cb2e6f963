"""Leaderboard aggregates computed from cells, in plain pandas/numpy so they can be tested without a database.

Conventions (DESIGN.md, "Metrics"): a per-length score is the task-weighted mean of the cell scores at that
length, the overall average is the mean over the version's lengths, wAvg(inc/dec) weight lengths linearly, and the
effective context length is the longest length up to which every length passes the version's threshold. Aggregates
over a row (average, wAvg, CI, effective length) are only published for complete rows: averaging over the cells
that happened to finish would reward a model for the cells it failed to run, and a length not measured for every
task is not known to pass. An incomplete row is marked partial, with the count of its cells.

The 95% intervals of a row and of each length are Price-Bonett intervals for a weighted mean of proportions
(`evalworkers.stats.weighted_mean_interval`), from each cell's score and its number of scored samples; a row with
a cell of unknown n (reported results) has no interval.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from evalworkers.stats import IntervalMethod, weighted_mean_interval

RECORD_COLUMNS: dict[str, str] = {
    "task__key": "task",
    "task__category": "category",
    "task__weight": "weight",
    "length": "length",
    "method": "method",
    "budget": "budget",
    "score": "score",
    "ci_low": "ci_low",
    "ci_high": "ci_high",
    "samples_done": "samples_done",
    "samples_errored": "samples_errored",
    "kv_bytes": "kv_bytes",
}
"""Cell record keys (as `Cell.objects.values(...)` names them) -> the column names of `cell_frame`."""



@dataclass(frozen=True)
class RowSummary:
    """Everything a cached leaderboard row needs for one (method, budget) of a submission."""

    method: str
    budget: float
    scores_by_length: dict[int, float | None]
    ci_by_length: dict[int, tuple[float, float] | None]
    task_scores: dict[str, dict[int, float | None]]
    category_scores: dict[str, dict[int, float | None]]
    average: float | None
    wavg_inc: float | None
    wavg_dec: float | None
    ci_low: float | None
    ci_high: float | None
    effective_length: int | None
    complete: bool
    samples: int
    samples_errored: int
    ci_method: str = IntervalMethod.NONE.value
    cells_measured: int = 0
    cells_expected: int = 0

    @property
    def partial_reason(self) -> str:
        """"" for a complete row, else how much of the grid it holds."""
        if self.complete:
            return ""
        return f"{self.cells_measured} of {self.cells_expected} cells of the grid measured"


def _num(value: object) -> float | None:
    """A plain float, or None for None/NaN (numpy scalars and NaN must not leak into JSON fields)."""
    if value is None:
        return None
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out


def cell_frame(records: Iterable[Mapping[str, object]]) -> pd.DataFrame:
    """One row per cell with typed columns (scores as float with NaN for missing), so that aggregation is vectorised.

    Missing weights default to 1.0 and missing sample counts to 0; an empty input gives an empty frame with the
    same columns, so callers never special-case "no cells".
    """
    frame = pd.DataFrame.from_records(list(records), columns=list(RECORD_COLUMNS))
    frame = frame.rename(columns=RECORD_COLUMNS)
    for col in ("score", "ci_low", "ci_high", "kv_bytes", "budget"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    frame["weight"] = pd.to_numeric(frame["weight"], errors="coerce").astype(float).fillna(1.0)
    frame["length"] = pd.to_numeric(frame["length"], errors="coerce").astype("Int64")
    for col in ("samples_done", "samples_errored"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").fillna(0).astype(int)
    frame["task"] = frame["task"].astype(object)
    frame["category"] = frame["category"].astype(object)
    frame["method"] = frame["method"].astype(object)
    return frame


def weighted_averages(scores: Sequence[float]) -> tuple[float, float]:
    """(wAvg inc, wAvg dec) of per-length scores given in ascending length order.

    inc weights length i (1-based) by i, rewarding long-context strength; dec weights it by n - i + 1, rewarding
    short-context strength. Both divide by sum(1..n) so they stay on the 0-100 scale.
    """
    values = np.asarray(list(scores), dtype=float)
    if values.size == 0:
        raise ValueError("weighted averages need at least one score")
    inc = np.arange(1, values.size + 1, dtype=float)
    dec = inc[::-1]
    return float(np.dot(inc, values) / inc.sum()), float(np.dot(dec, values) / dec.sum())


def effective_length(scores_by_length: Mapping[int, float | None], threshold: float) -> int | None:
    """Longest length L such that every length <= L scores at or above `threshold` (RULER's convention).

    A missing score counts as failing: we cannot claim a length works without having measured it. None when the
    shortest length already fails.
    """
    best: int | None = None
    for length in sorted(scores_by_length, key=int):
        score = _num(scores_by_length[length])
        if score is None or score < float(threshold):
            break
        best = int(length)
    return best


def effective_length_decided(scores_by_length: Mapping[int, float | None],
                             threshold: float) -> tuple[int | None, bool]:
    """(effective length, decided) for scores that may have gaps (a published table with "-" or blank cells).

    Walking up from the shortest length: the first score under `threshold` decides (the length before it, or None
    when the shortest fails); a missing score before any failure leaves it undecided, since that length is not
    known to pass; every length passing gives the longest. Unlike `effective_length`, a gap is not a failure: a
    table that did not print a score does not say the model failed there.
    """
    best: int | None = None
    for length in sorted(scores_by_length, key=int):
        score = _num(scores_by_length[length])
        if score is None:
            return best, False
        if score < float(threshold):
            return best, True
        best = int(length)
    return best, True


def _weighted_means(scores: np.ndarray, weights: np.ndarray) -> list[float | None]:
    """Per column, the weighted mean over the rows that were measured; None for a column with no measurement."""
    measured = ~np.isnan(scores)
    w = np.where(measured, weights[:, None], 0.0)
    totals = w.sum(axis=0)
    sums = (np.where(measured, scores, 0.0) * w).sum(axis=0)
    return [float(sums[j] / totals[j]) if totals[j] > 0 else None for j in range(scores.shape[1])]


def _grid(cells: pd.DataFrame, column: str, rows: Mapping[str, int], cols: Mapping[int, int]) -> np.ndarray:
    """The task x length matrix of one column, NaN where no cell was measured."""
    grid = np.full((len(rows), len(cols)), np.nan)
    grid[cells["task"].map(rows).to_numpy(), cells["length"].map(cols).to_numpy()] = (
        cells[column].astype(float).to_numpy())
    return grid


def _summarize_group(group: pd.DataFrame, lengths: list[int], tasks: list[str],
                     categories: Mapping[str, str], weights: np.ndarray, threshold: float,
                     method: str, budget: float) -> RowSummary:
    """Summary of one (method, budget) on the version's task x length grid (numpy: this runs for every row of
    every submission when the demo data or a recompute fills the cache)."""
    cells = group.drop_duplicates(subset=["task", "length"], keep="last")
    rows = {task: i for i, task in enumerate(tasks)}
    cols = {length: j for j, length in enumerate(lengths)}
    scores = _grid(cells, "score", rows, cols)

    per_length = _weighted_means(scores, weights)
    by_length = dict(zip(lengths, per_length, strict=True))
    as_lists = scores.tolist()
    task_scores = {task: {length: _num(as_lists[i][j]) for j, length in enumerate(lengths)}
                   for i, task in enumerate(tasks)}
    category_scores: dict[str, dict[int, float | None]] = {}
    for category in sorted(set(categories.values())):
        members = np.array([categories.get(t) == category for t in tasks])
        category_scores[category] = dict(zip(lengths, _weighted_means(scores[members], weights[members]),
                                             strict=True))

    column_complete = ~np.isnan(scores).any(axis=0)
    complete = bool(tasks) and bool(lengths) and bool(column_complete.all())
    # Only a complete grid has an effective length: a length missing a task is not known to pass, and a later
    # length not measured is not known to fail.
    eff = effective_length(by_length, threshold) if complete else None

    # Scored samples per cell: the n of each cell's proportion (0 for reported cells: no interval can be given).
    counts = _grid(cells.assign(n=cells["samples_done"] - cells["samples_errored"]), "n", rows, cols)
    share = weights / weights.sum()
    ci_by_length: dict[int, tuple[float, float] | None] = {}
    for j, length in enumerate(lengths):
        known = column_complete[j] and bool(np.all(counts[:, j] > 0))
        ci_by_length[length] = (weighted_mean_interval(scores[:, j], counts[:, j], share) if known else None)

    average = wavg_inc = wavg_dec = ci_low = ci_high = None
    interval_method = IntervalMethod.NONE
    if complete:
        average = float(np.mean(per_length))
        wavg_inc, wavg_dec = weighted_averages(per_length)  # type: ignore[arg-type]
        if bool(np.all(counts > 0)):
            # The average is sum_i c_i * score_i with c_i = (1/n_lengths) * w_task / sum(w).
            coef = np.repeat(share[:, None] / len(lengths), len(lengths), axis=1)
            ci_low, ci_high = weighted_mean_interval(scores.ravel(), counts.ravel(), coef.ravel())
            interval_method = IntervalMethod.PRICE_BONETT

    return RowSummary(
        method=str(method), budget=float(budget), scores_by_length=by_length, ci_by_length=ci_by_length,
        task_scores=task_scores,
        category_scores=category_scores, average=average, wavg_inc=wavg_inc, wavg_dec=wavg_dec,
        ci_low=ci_low, ci_high=ci_high, effective_length=eff, complete=complete,
        samples=int(cells["samples_done"].sum()), samples_errored=int(cells["samples_errored"].sum()),
        ci_method=interval_method.value, cells_measured=int((~np.isnan(scores)).sum()), cells_expected=int(scores.size),
    )


def summarize_cells(frame: pd.DataFrame, lengths: Sequence[int], tasks: Sequence[str],
                    threshold: float) -> list[RowSummary]:
    """One summary per (method, budget) in `frame`, ordered by method, then budget descending (full cache first).

    Only cells on the version's grid (its tasks and lengths) count; every summary reports every task and length of
    the version, with None where nothing was measured, so rows of one version are directly comparable.
    """
    lengths = sorted(int(n) for n in lengths)
    tasks = list(tasks)
    grid = frame[frame["task"].isin(tasks) & frame["length"].isin(lengths)].copy()
    if grid.empty:
        return []
    grid["length"] = grid["length"].astype(int)
    firsts = grid.drop_duplicates(subset="task", keep="last").set_index("task")
    categories = {t: str(c) for t, c in firsts["category"].items() if isinstance(c, str) and c}
    weights = firsts["weight"].reindex(tasks).fillna(1.0).astype(float).to_numpy()

    summaries = [
        _summarize_group(group, lengths, tasks, categories, weights, float(threshold), method, budget)
        for (method, budget), group in grid.groupby(["method", "budget"], sort=False)
    ]
    return sorted(summaries, key=lambda s: (s.method, -s.budget))


def rank_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Sort by average (best first, unscored last) and add Chatbot Arena style ranks from the CIs.

    rank = rank_low = 1 + rows statistically better (their ci_low above this ci_high); rank_high = rows not
    statistically worse (their ci_high at or above this ci_low), itself included. Overlapping rows thus share a
    rank and show a range instead of a false order. A row without a CI is ranked by its point average.
    Rows without an average get <NA> ranks.
    """
    out = frame.copy()
    avg = pd.to_numeric(out["average"], errors="coerce").astype(float)
    low = pd.to_numeric(out["ci_low"], errors="coerce").astype(float).fillna(avg)
    high = pd.to_numeric(out["ci_high"], errors="coerce").astype(float).fillna(avg)
    ranked = avg.notna().to_numpy()
    lo, hi = low.to_numpy()[ranked], high.to_numpy()[ranked]

    rank = pd.Series(pd.NA, index=out.index, dtype="Int64")
    rank_high = pd.Series(pd.NA, index=out.index, dtype="Int64")
    # Counting by binary search over the sorted bounds: O(n log n), not an n x n comparison (thousands of rows).
    n = len(lo)
    rank[ranked] = 1 + n - np.searchsorted(np.sort(lo), hi, side="right")  # rows with ci_low > this ci_high
    rank_high[ranked] = n - np.searchsorted(np.sort(hi), lo, side="left")  # rows with ci_high >= this ci_low
    out["rank"] = rank
    out["rank_low"] = rank.copy()
    out["rank_high"] = rank_high

    out["_avg"] = avg
    out = out.sort_values("_avg", ascending=False, na_position="last", kind="mergesort").drop(columns="_avg")
    return out.reset_index(drop=True)


def scores_by_output(frame: pd.DataFrame, outputs: Mapping[str, int]) -> dict[tuple[str, float], dict[str, float]]:
    """Per (method, budget): the long-generation tasks' score at each target reply length, the output-length axis.

    ``outputs`` maps a task key to its target reply length in tokens (tasks that are not long-generation are
    absent). Each score is the unweighted mean (0-100) of the cells at that reply length, over their tasks and
    context lengths; cells without a score are left out. Keys are the reply lengths as strings, ascending; a
    (method, budget) without long-generation cells is absent.
    """
    scored = frame[frame["task"].isin(list(outputs)) & frame["score"].notna()].copy()
    if scored.empty:
        return {}
    scored["output"] = scored["task"].map(outputs).astype(int)
    out: dict[tuple[str, float], dict[str, float]] = {}
    for (method, budget, output), group in scored.groupby(["method", "budget", "output"], sort=True):
        out.setdefault((str(method), float(budget)), {})[str(int(output))] = round(float(group["score"].mean()), 2)
    return out

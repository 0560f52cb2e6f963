"""Leaderboard aggregates (leaderboard/metrics.py) on small hand-computed frames; no database needed."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from leaderboard import metrics

LENGTHS = [4096, 8192, 16384]
TASKS = ["niah_single_1", "vt"]
THRESHOLD = 85.6


def record(task: str, length: int, score: float | None, *, method: str = "full", budget: float = 1.0,
           ci: float | None = 0.0, weight: float = 1.0, category: str | None = None, done: int = 10,
           errored: int = 0) -> dict[str, object]:
    """One cell as `Cell.objects.values(...)` gives it; `ci` is the half-width of its CI (None: no CI)."""
    half = None if ci is None or score is None else ci
    return {
        "task__key": task,
        "task__category": category or ("retrieval" if task.startswith("niah") else "tracing"),
        "task__weight": weight,
        "length": length,
        "method": method,
        "budget": budget,
        "score": score,
        "ci_low": None if half is None else score - half,
        "ci_high": None if half is None else score + half,
        "samples_done": done,
        "samples_errored": errored,
        "kv_bytes": 1000,
    }


def grid(scores: dict[str, list[float | None]], **kwargs: object) -> list[dict[str, object]]:
    """Records for a tasks x LENGTHS grid, scores given per task in ascending length order."""
    return [
        record(task, length, score, **kwargs)  # type: ignore[arg-type]
        for task, row in scores.items()
        for length, score in zip(LENGTHS, row, strict=True)
    ]


def summarize(records: list[dict[str, object]], tasks: list[str] = TASKS) -> list[metrics.RowSummary]:
    return metrics.summarize_cells(metrics.cell_frame(records), lengths=LENGTHS, tasks=tasks, threshold=THRESHOLD)


def only(records: list[dict[str, object]]) -> metrics.RowSummary:
    (summary,) = summarize(records)
    return summary


# Per-length scores: (100+80)/2=90, (90+70)/2=80, (70+50)/2=60.
BASIC = {"niah_single_1": [100.0, 90.0, 70.0], "vt": [80.0, 70.0, 50.0]}


def test_per_length_score_is_mean_over_tasks_and_average_is_mean_over_lengths():
    s = only(grid(BASIC))
    assert s.scores_by_length == {4096: 90.0, 8192: 80.0, 16384: 60.0}
    assert s.average == pytest.approx((90 + 80 + 60) / 3)
    assert s.complete is True
    assert s.method == "full" and s.budget == 1.0


def test_weighted_averages_weight_lengths_linearly_in_both_directions():
    s = only(grid(BASIC))
    assert s.wavg_inc == pytest.approx((90 * 1 + 80 * 2 + 60 * 3) / 6)  # 71.666...
    assert s.wavg_dec == pytest.approx((90 * 3 + 80 * 2 + 60 * 1) / 6)  # 81.666...
    inc, dec = metrics.weighted_averages([90.0, 80.0, 60.0])
    assert inc == pytest.approx(71.6666666667)
    assert dec == pytest.approx(81.6666666667)


def test_weighted_averages_reject_an_empty_sequence():
    with pytest.raises(ValueError):
        metrics.weighted_averages([])


def test_task_and_category_scores_cover_every_task_and_length():
    s = only(grid(BASIC))
    assert s.task_scores == {
        "niah_single_1": {4096: 100.0, 8192: 90.0, 16384: 70.0},
        "vt": {4096: 80.0, 8192: 70.0, 16384: 50.0},
    }
    assert s.category_scores == {
        "retrieval": {4096: 100.0, 8192: 90.0, 16384: 70.0},
        "tracing": {4096: 80.0, 8192: 70.0, 16384: 50.0},
    }


def test_samples_are_summed_over_cells():
    s = only(grid(BASIC, done=7, errored=2))
    assert s.samples == 6 * 7
    assert s.samples_errored == 6 * 2


def test_task_weights_weight_the_per_length_mean():
    records = [record("niah_single_1", n, 90.0, weight=3.0) for n in LENGTHS]
    records += [record("vt", n, 50.0, weight=1.0) for n in LENGTHS]
    s = only(records)
    expected = (3 * 90 + 1 * 50) / 4  # 80, not the unweighted 70
    assert s.scores_by_length == {n: pytest.approx(expected) for n in LENGTHS}
    assert s.average == pytest.approx(expected)


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ({4096: 95.0, 8192: 90.0, 16384: 85.6}, 16384),  # the threshold itself passes
        ({4096: 95.0, 8192: 80.0, 16384: 90.0}, 4096),  # a failing middle stops it, even if a later length passes
        ({4096: 85.5, 8192: 95.0, 16384: 95.0}, None),  # failing at the shortest length
        ({4096: 95.0, 8192: None, 16384: 95.0}, 4096),  # an unmeasured length does not pass
        ({16384: 95.0, 4096: 95.0, 8192: 70.0}, 4096),  # order of the mapping does not matter
    ],
)
def test_effective_length_is_longest_length_with_every_shorter_one_passing(scores, expected):
    assert metrics.effective_length(scores, THRESHOLD) == expected


def test_effective_length_accepts_string_keys_and_nan():
    assert metrics.effective_length({"4096": 90.0, "8192": 88.0}, THRESHOLD) == 8192
    assert metrics.effective_length({4096: 90.0, 8192: float("nan")}, THRESHOLD) == 4096


def test_summary_effective_length_uses_the_version_threshold():
    s = only(grid({"niah_single_1": [100.0, 90.0, 80.0], "vt": [90.0, 85.0, 80.0]}))
    # Per-length: 95, 87.5, 80 -> passes at 4096 and 8192 only.
    assert s.effective_length == 8192


def test_incomplete_row_has_no_aggregates_but_keeps_measured_scores():
    records = grid({"niah_single_1": [100.0, 90.0, 70.0], "vt": [80.0, None, 50.0]})
    s = only(records)
    assert s.complete is False
    assert s.average is None
    assert s.wavg_inc is None and s.wavg_dec is None
    assert s.ci_low is None and s.ci_high is None
    assert s.task_scores["vt"][8192] is None
    assert s.scores_by_length == {4096: 90.0, 8192: 90.0, 16384: 60.0}
    # 8192 is not known to pass with a task missing, nor 16384 to fail: an incomplete grid has no effective length.
    assert s.effective_length is None
    assert s.partial_reason == "5 of 6 cells of the grid measured"


def test_a_complete_row_is_not_partial():
    s = only(grid(BASIC))
    assert s.partial_reason == "" and s.cells_measured == s.cells_expected == 6


def test_missing_length_is_none_in_scores_and_makes_the_row_incomplete():
    records = [r for r in grid(BASIC) if r["length"] != 16384]
    s = only(records)
    assert s.scores_by_length == {4096: 90.0, 8192: 80.0, 16384: None}
    assert s.task_scores["vt"] == {4096: 80.0, 8192: 70.0, 16384: None}
    assert s.complete is False
    assert s.average is None


def test_a_version_task_without_cells_is_reported_and_makes_the_row_incomplete():
    (s,) = summarize(grid(BASIC), tasks=[*TASKS, "qa_1"])
    assert s.task_scores["qa_1"] == {4096: None, 8192: None, 16384: None}
    assert s.complete is False
    assert s.average is None


def test_cells_outside_the_version_grid_are_ignored():
    records = [*grid(BASIC), record("other_task", 4096, 0.0), record("vt", 32768, 0.0)]
    s = only(records)
    assert s.scores_by_length == {4096: 90.0, 8192: 80.0, 16384: 60.0}
    assert set(s.task_scores) == set(TASKS)
    assert s.samples == 6 * 10


def price_bonett(scores: list[float], n: list[int], coef: list[float]) -> tuple[float, float]:
    """Price & Bonett (2004) by hand, with the variance's n - 1 denominator (evalworkers/stats.py)."""
    m = len(scores)
    adjusted = [(s / 100 * k + 2 / m) / (k + 4 / m) for s, k in zip(scores, n, strict=True)]
    centre = sum(c * a for c, a in zip(coef, adjusted, strict=True))
    var = sum(c * c * a * (1 - a) / (k + 4 / m - 1) for c, a, k in zip(coef, adjusted, n, strict=True))
    point = sum(c * s / 100 for c, s in zip(coef, scores, strict=True))
    low, high = min(centre - 1.959964 * math.sqrt(var), point), max(centre + 1.959964 * math.sqrt(var), point)
    return 100 * max(low, 0.0), 100 * min(high, 1.0)


def test_each_length_gets_a_price_bonett_interval_from_its_cells_scores_and_samples():
    summary = only(grid(BASIC, done=10))
    low, high = summary.ci_by_length[8192]  # 90 and 70 of 10 samples each
    assert (low, high) == pytest.approx(price_bonett([90.0, 70.0], [10, 10], [0.5, 0.5]), abs=1e-4)
    assert (low, high) == pytest.approx((57.244, 92.756), abs=1e-3)
    missing = only(grid({"niah_single_1": [100.0, None, 70.0], "vt": [80.0, 70.0, 50.0]}))
    assert missing.ci_by_length[8192] is None and missing.ci_by_length[4096] is not None


def test_the_row_interval_is_price_bonett_over_every_cell_and_is_named():
    s = only(grid(BASIC, done=10))
    scores = [100.0, 90.0, 70.0, 80.0, 70.0, 50.0]
    assert (s.ci_low, s.ci_high) == pytest.approx(price_bonett(scores, [10] * 6, [1 / 6] * 6), abs=1e-4)
    assert s.ci_method == "price_bonett"


def test_a_row_of_perfect_cells_of_four_samples_has_an_interval_that_does_not_collapse():
    s = only(grid({"niah_single_1": [100.0] * 3, "vt": [100.0] * 3}, done=4))
    assert s.average == 100.0 and s.ci_high == 100.0
    assert 80.0 < s.ci_low < 99.0
    assert all(low < 100.0 == high for low, high in s.ci_by_length.values())  # type: ignore[union-attr]


def test_more_samples_per_cell_give_a_narrower_interval():
    few, many = only(grid(BASIC, done=4)), only(grid(BASIC, done=100))
    assert few.average == many.average
    assert few.ci_low < many.ci_low <= many.average <= many.ci_high < few.ci_high


def test_errored_samples_do_not_count_towards_a_cells_n():
    clean, errored = only(grid(BASIC, done=10)), only(grid(BASIC, done=10, errored=6))
    four = only(grid(BASIC, done=4))
    assert errored.ci_high - errored.ci_low > clean.ci_high - clean.ci_low
    assert (errored.ci_low, errored.ci_high) == (four.ci_low, four.ci_high)


def test_a_row_with_cells_of_unknown_sample_count_has_no_interval():
    s = only(grid(BASIC, done=0))  # reported results: a score without samples
    assert s.average is not None
    assert s.ci_low is None and s.ci_high is None and s.ci_method == ""
    assert all(v is None for v in s.ci_by_length.values())


def test_two_methods_and_budgets_give_summaries_by_method_then_budget_descending():
    records = grid(BASIC, method="snapkv", budget=0.25) + grid(BASIC, method="full", budget=1.0)
    records += grid({"niah_single_1": [50.0, 50.0, 50.0], "vt": [50.0, 50.0, 50.0]}, method="snapkv", budget=0.5)
    summaries = summarize(records)
    assert [(s.method, s.budget) for s in summaries] == [("full", 1.0), ("snapkv", 0.5), ("snapkv", 0.25)]
    assert summaries[1].average == pytest.approx(50.0)
    assert summaries[2].average == pytest.approx((90 + 80 + 60) / 3)


def test_no_cells_give_no_summaries():
    assert summarize([]) == []
    assert list(metrics.cell_frame([]).columns) == list(metrics.RECORD_COLUMNS.values())


def test_summaries_hold_plain_python_numbers():
    s = only(grid(BASIC))
    values = [s.average, s.wavg_inc, s.wavg_dec, s.ci_low, s.ci_high, *s.scores_by_length.values()]
    assert all(type(v) is float for v in values)
    assert type(s.effective_length) is int
    assert all(type(k) is int for k in s.scores_by_length)
    assert type(s.samples) is int


def rank_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": ["C", "A", "D", "B"],
            "average": [68.0, 90.0, None, 70.0],
            "ci_low": [63.0, 88.0, None, 65.0],
            "ci_high": [73.0, 92.0, None, 75.0],
        }
    )


def test_rank_rows_sorts_by_average_with_missing_last():
    ranked = metrics.rank_rows(rank_frame())
    assert list(ranked["id"]) == ["A", "B", "C", "D"]


def test_rank_rows_gives_overlapping_rows_a_shared_rank_and_range():
    ranked = metrics.rank_rows(rank_frame()).set_index("id")
    assert ranked.loc["A", "rank"] == 1 and ranked.loc["A", "rank_high"] == 1
    assert ranked.loc["B", "rank"] == 2 and ranked.loc["B", "rank_high"] == 3
    assert ranked.loc["C", "rank"] == 2 and ranked.loc["C", "rank_high"] == 3
    assert (ranked["rank_low"].fillna(-1) == ranked["rank"].fillna(-1)).all()


def test_rank_rows_separates_rows_whose_cis_do_not_overlap():
    frame = pd.DataFrame({"id": [1, 2, 3], "average": [90.0, 70.0, 50.0], "ci_low": [89.0, 69.0, 49.0],
                          "ci_high": [91.0, 71.0, 51.0]})
    ranked = metrics.rank_rows(frame)
    assert list(ranked["rank"]) == [1, 2, 3]
    assert list(ranked["rank_high"]) == [1, 2, 3]


def test_rank_rows_treats_touching_cis_as_overlapping():
    frame = pd.DataFrame({"id": ["x", "y"], "average": [85.0, 75.0], "ci_low": [80.0, 70.0],
                          "ci_high": [90.0, 80.0]})
    ranked = metrics.rank_rows(frame)
    assert list(ranked["rank"]) == [1, 1]
    assert list(ranked["rank_high"]) == [2, 2]


def test_rank_rows_gives_missing_averages_missing_ranks_as_nullable_ints():
    ranked = metrics.rank_rows(rank_frame())
    for col in ("rank", "rank_low", "rank_high"):
        assert str(ranked[col].dtype) == "Int64"
    last = ranked.iloc[-1]
    assert last["id"] == "D"
    assert pd.isna(last["rank"]) and pd.isna(last["rank_low"]) and pd.isna(last["rank_high"])


def test_rank_rows_uses_the_point_when_a_row_has_no_ci():
    frame = pd.DataFrame({"id": ["x", "y"], "average": [80.0, 60.0], "ci_low": [None, 55.0],
                          "ci_high": [None, 65.0]})
    ranked = metrics.rank_rows(frame).set_index("id")
    assert ranked.loc["y", "rank"] == 2
    assert ranked.loc["x", "rank_high"] == 1

"""95% intervals that stay honest at small n (evalworkers/stats.py): Wilson per cell, Price-Bonett for means of
cells; checked against published values and, for coverage, by seeded simulation on known proportions."""

from __future__ import annotations

import numpy as np
import pytest

from evalworkers import runner
from evalworkers.evaluation import SampleOutcome, summarize
from evalworkers.stats import IntervalMethod, cell_interval, weighted_mean_interval, wilson
from leaderboard import rows, versioning
from leaderboard.models import Cell, LeaderboardRow
from tests.factories import make_entry, make_submission, make_version
from tests.fake_openai import FakeOpenAI
from tests.needle_reader import needle_reader

SIMULATED_CELLS = 2000


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    # Newcombe (1998), Statistics in Medicine 17:857-872, Table I, method 3 (score interval without correction).
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718),
     (29, 29, 0.8830, 1.0)],
)
def test_the_wilson_interval_matches_newcombes_published_values(successes, n, low, high) -> None:
    assert wilson(successes, n) == pytest.approx((low, high), abs=5e-5)


def test_four_right_answers_out_of_four_give_an_interval_from_51_to_100_not_a_point() -> None:
    interval = cell_interval([100.0] * 4)
    assert interval.mean == 100.0 and interval.high == 100.0
    assert interval.low == pytest.approx(51.01, abs=0.01)
    assert interval.method == IntervalMethod.WILSON
    wrong = cell_interval([0.0] * 4)
    assert (wrong.low, wrong.high) == pytest.approx((0.0, 48.99), abs=0.01)


def test_a_cell_with_partial_scores_is_named_as_a_bounded_mean() -> None:
    interval = cell_interval([100.0, 75.0, 50.0, 100.0])
    assert interval.method == IntervalMethod.WILSON_BOUNDED
    assert interval.low < interval.mean < interval.high
    same = cell_interval([75.0] * 4)  # every sample equal, yet not a certainty
    assert same.high - same.low > 40.0


def outcome(index: int, score: float | None) -> SampleOutcome:
    return SampleOutcome(index=index, prediction="", expected=[], score=score, error="" if score is not None else "x",
                         target_prompt_tokens=0, prompt_tokens=None, output_tokens=None, latency_s=0.0, ttft_s=None,
                         metadata={})


def test_a_cell_summary_carries_the_wilson_interval_and_its_name() -> None:
    summary = summarize([outcome(i, 100.0) for i in range(4)] + [outcome(4, None)])
    assert summary.n == 4 and summary.errors == 1
    assert (summary.ci_low, summary.ci_high) == pytest.approx((51.01, 100.0), abs=0.01)
    assert summary.ci_method == "wilson"
    assert summarize([outcome(0, None)]).ci_method == ""


def wilson_hits(n: int, p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For simulated cells of n samples, cell i right with probability p[i]: whether its interval holds p[i]."""
    table = [cell_interval([100.0] * k + [0.0] * (n - k)) for k in range(n + 1)]
    lows = np.array([t.low for t in table]) / 100
    highs = np.array([t.high for t in table]) / 100
    k = rng.binomial(n, p)
    return (lows[k] <= p) & (p <= highs[k])


@pytest.mark.parametrize("n", [4, 10, 30, 100])
def test_wilson_cells_cover_the_true_proportion_about_95_percent_of_the_time(n) -> None:
    rng = np.random.default_rng(n)
    overall = wilson_hits(n, rng.uniform(0.01, 0.99, SIMULATED_CELLS), rng).mean()
    assert 0.93 <= overall <= 0.975, overall
    # Wilson's coverage oscillates with p at small n (Brown, Cai & DasGupta 2001): exactly 87.5% at n=4, p=0.5,
    # where 0 of 4 and 4 of 4 both exclude 0.5, and 95-100% elsewhere; never near the bootstrap's collapse.
    at = {p: wilson_hits(n, np.full(SIMULATED_CELLS, p), rng).mean() for p in (0.1, 0.3, 0.5, 0.7, 0.9)}
    assert min(at.values()) >= 0.84, at


@pytest.mark.parametrize("n", [4, 10, 30])
def test_cells_of_partial_scores_cover_their_mean_at_least_95_percent_of_the_time(n) -> None:
    # string_match_all with four expected items, each found with probability p: a sample scores 0, 25, ..., 100.
    rng = np.random.default_rng(100 + n)
    for p in (0.3, 0.6, 0.9):
        found = rng.binomial(4, p, size=(SIMULATED_CELLS, n)) * 25.0
        hits = [(i := cell_interval(list(row))).low <= 100 * p <= i.high for row in found]
        assert np.mean(hits) >= 0.94, (n, p, np.mean(hits))


@pytest.mark.parametrize(("cells", "n", "p_low"), [(84, 4, 0.5), (84, 4, 0.9), (13, 10, 0.0), (4, 4, 0.6),
                                                    (84, 100, 0.3)])
def test_price_bonett_row_intervals_cover_the_true_mean_about_95_percent_of_the_time(cells, n, p_low) -> None:
    rng = np.random.default_rng(cells * 1000 + n)
    coef = np.full(cells, 1.0 / cells)
    hits = []
    for _ in range(SIMULATED_CELLS):
        p = rng.uniform(p_low, 1.0, cells)
        scores = 100.0 * rng.binomial(n, p) / n
        low, high = weighted_mean_interval(scores, [n] * cells, coef)
        hits.append(low <= 100 * float(coef @ p) <= high)
    assert 0.93 <= np.mean(hits) <= 0.99, np.mean(hits)


def test_a_mean_of_perfect_cells_keeps_a_width_and_holds_its_point() -> None:
    low, high = weighted_mean_interval([100.0] * 84, [4] * 84, [1 / 84] * 84)
    assert high == 100.0 and 97.0 < low < 100.0
    low, high = weighted_mean_interval([0.0, 100.0], [4, 4], [0.5, 0.5])
    assert low < 50.0 < high


def test_weights_shape_the_interval_of_a_weighted_mean() -> None:
    even = weighted_mean_interval([100.0, 0.0], [10, 10], [0.5, 0.5])
    tilted = weighted_mean_interval([100.0, 0.0], [10, 10], [0.9, 0.1])
    assert tilted[0] > even[0] and tilted[1] > even[1]


def test_cells_without_samples_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one scored sample"):
        weighted_mean_interval([50.0], [0], [1.0])
    with pytest.raises(ValueError):
        wilson(0, 0)


@pytest.mark.django_db
def test_four_right_answers_show_a_named_interval_on_the_board_the_model_page_and_the_api(client, settings) -> None:
    settings.EVAL_PROBE_RETRY_S = 0
    version = make_version("ci4", publish=True, lengths=[512], samples_per_cell=4)
    versioning.make_default(version)
    with FakeOpenAI(models=("m",), api_key="k", answer=needle_reader(0), max_model_len=32768) as fake:
        sub = make_submission(version=version, model=make_entry(endpoint_url=fake.base_url, api_model_name="m"),
                              api_key="k")
        for cell_id in runner.start(sub.pk).cell_ids:
            runner.run_cell(cell_id)
    rows.recompute(sub.pk)  # the worker does it on commit; this test runs inside one transaction
    cell = Cell.objects.get(submission=sub)
    assert (cell.score, cell.ci_method) == (100.0, "wilson")
    assert (cell.ci_low, cell.ci_high) == pytest.approx((51.01, 100.0), abs=0.01)
    row = LeaderboardRow.objects.get(submission=sub)
    assert row.ci_method == "price_bonett" and row.ci_high == 100.0 and 30.0 < row.ci_low < 60.0

    board = client.get("/").content.decode()
    assert f"{row.ci_low:.1f}–100.0" in board
    assert "Price–Bonett interval for a weighted mean of proportions" in board
    page = client.get(f"/models/{sub.pk}/").content.decode()
    assert "51.0–100.0" in page and "Wilson score interval" in page and "Price–Bonett" in page
    (api_row,) = client.get("/api/v1/leaderboard").json()["rows"]
    assert api_row["ci_method"] == "price_bonett" and api_row["ci"][1] == 100.0 and api_row["ci"][0] < 60.0
    assert client.get(f"/api/v1/submissions/{sub.pk}").json()["cells"][0]["ci_method"] == "wilson"

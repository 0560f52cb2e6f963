"""95% intervals for scores on the 0-100 scale that stay honest at small n. Plain numpy, no Django.

A sample scores 0 or 100 (``string_match_part``: one right answer is enough) or a fraction of 100
(``string_match_all``: the share of the expected items found). A cell's score is the mean of its samples, so on the
0-1 scale it is a proportion, or a mean of values bounded in [0, 1].

- A cell: the Wilson score interval (Wilson 1927, JASA 22:209-212; recommended over the Wald and the percentile
  bootstrap by Brown, Cai & DasGupta 2001, Statistical Science 16:101-133). A percentile bootstrap collapses to a
  point when every sample is right (or every one wrong); Wilson gives 4 of 4 right as [51.0, 100].
  For partial scores the same formula is applied to the mean with n = the number of samples: by the Bhatia-Davis
  inequality (Bhatia & Davis 2000, Amer. Math. Monthly 107:353-357) a variable in [0, 1] with mean p has variance at
  most p(1 - p), the variance of a Bernoulli variable, so the interval is conservative, never narrower than it should.
- A weighted mean of cells (a row's average, a length's score): the Price-Bonett interval for a linear function of
  binomial proportions (Price & Bonett 2004, Computational Statistics & Data Analysis 45:449-456): each of the m
  cells gets 2/m successes and 4/m trials added, then a Wald interval on sum(c_i * p_i) with the adjusted
  proportions. The added pseudo-counts keep it from collapsing when every cell is 0 or 100. Each cell's variance
  is divided by n_i + 4/m - 1 instead of the paper's n_i + 4/m: p(1 - p)/n estimated from the same n samples is
  biased low by (n - 1)/n, which matters once many small cells are summed (84 cells of 4 samples: about 90%
  coverage with the paper's denominator, 95-96% with this one, measured by simulation).

Coverage, measured by seeded simulation (tests/test_score_intervals.py, 2,000 cells or rows each):
- Wilson, p uniform in (0.01, 0.99): 95.6% at n=4, 95.5% at n=10 and 30, 95.6% at n=100. It oscillates with p at
  small n: at n=4, 88% for p=0.5 (0 of 4 and 4 of 4 both exclude 0.5), 91-96% for p=0.1-0.9.
- Wilson on partial scores (four items a sample): 99.9-100% (conservative, as Bhatia-Davis says).
- Price-Bonett: 94.9% (84 cells of n=4, p in [0.5, 1]), 96.2% (p in [0.9, 1]), 94.5% (13 cells of n=10),
  96.1% (4 cells of n=4), 94.7% (84 cells of n=100).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

Z_95 = 1.959963984540054
"""The standard normal quantile for a two-sided 95% interval."""


class IntervalMethod(StrEnum):
    """How an interval was computed; stored with it and named wherever it is shown."""

    WILSON = "wilson"
    WILSON_BOUNDED = "wilson_bounded"
    PRICE_BONETT = "price_bonett"
    BOOTSTRAP = "bootstrap"  # cells scored before the method was named: a percentile bootstrap over samples
    CELL_CI_PROPAGATION = "cell_ci_propagation"  # rows computed before: cells' CIs combined as +-1.96 se
    NONE = ""


METHOD_LABELS: dict[IntervalMethod, str] = {
    IntervalMethod.WILSON: "Wilson score interval",
    IntervalMethod.WILSON_BOUNDED: "Wilson score interval on a mean of partial scores (conservative)",
    IntervalMethod.PRICE_BONETT: "Price–Bonett interval for a weighted mean of proportions",
    IntervalMethod.BOOTSTRAP: "percentile bootstrap (may collapse at small n)",
    IntervalMethod.CELL_CI_PROPAGATION: "cells' intervals combined as standard errors",
    IntervalMethod.NONE: "no interval",
}


@dataclass(frozen=True)
class Interval:
    """A mean and its 95% interval, all on the 0-100 scale, with the method that gave the interval."""

    mean: float
    low: float
    high: float
    method: IntervalMethod


def bootstrap_seed(*parts: object) -> int:
    """A stable 64-bit seed from any values (kept for callers that seed per cell)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def wilson(successes: float, n: float, *, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval (low, high) on the 0-1 scale for `successes` out of `n` (successes may be fractional,
    see the module docstring). Never zero-width for n > 0: 0 of n gives (0, z^2 / (n + z^2))."""
    if n <= 0:
        raise ValueError("a Wilson interval needs n > 0")
    p = min(max(successes / n, 0.0), 1.0)
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # Exact at the ends: rounding must not leave p = 1 just outside its own interval.
    low = 0.0 if p == 0.0 else max(0.0, centre - half)
    high = 1.0 if p == 1.0 else min(1.0, centre + half)
    return low, high


def cell_interval(scores: Sequence[float]) -> Interval:
    """Mean of a cell's sample scores (0-100) with its 95% Wilson interval.

    All scores 0 or 100: a proportion (``WILSON``); any partial score: the bounded-mean reading (``WILSON_BOUNDED``).
    """
    if not scores:
        raise ValueError("no scores to aggregate")
    values = np.asarray(scores, dtype=float)
    n = len(values)
    mean = float(values.mean())
    low, high = wilson(mean / 100.0 * n, n)
    binary = bool(np.all((values == 0.0) | (values == 100.0)))
    return Interval(mean=mean, low=100.0 * low, high=100.0 * high,
                    method=IntervalMethod.WILSON if binary else IntervalMethod.WILSON_BOUNDED)


def weighted_mean_interval(scores: Sequence[float], n: Sequence[float], coefficients: Sequence[float], *,
                           z: float = Z_95) -> tuple[float, float]:
    """Price-Bonett 95% interval (low, high), 0-100, for sum(c_i * score_i) over cells with scores 0-100 from
    n_i scored samples each. The coefficients are the weights of the mean (they sum to 1 for an average).

    The interval is widened, if need be, to hold the point estimate itself (the adjusted centre moves a little
    towards 50), and clipped to 0-100.
    """
    s = np.asarray(scores, dtype=float) / 100.0
    counts = np.asarray(n, dtype=float)
    c = np.asarray(coefficients, dtype=float)
    if not (s.shape == counts.shape == c.shape) or s.size == 0:
        raise ValueError("scores, n and coefficients must be non-empty and of one length")
    if np.any(counts <= 0):
        raise ValueError("every cell needs at least one scored sample")
    m = int(np.count_nonzero(c))
    adjusted = (s * counts + 2.0 / m) / (counts + 4.0 / m)
    centre = float(np.dot(c, adjusted))
    se = float(np.sqrt(np.sum(c * c * adjusted * (1.0 - adjusted) / (counts + 4.0 / m - 1.0))))
    point = float(np.dot(c, s))
    low = min(centre - z * se, point)
    high = max(centre + z * se, point)
    return 100.0 * max(low, 0.0), 100.0 * min(high, 1.0)

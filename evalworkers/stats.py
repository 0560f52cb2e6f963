"""Cell aggregates: the mean score and its 95% bootstrap confidence interval (seeded, so reproducible)."""

from __future__ import annotations

import hashlib

import numpy as np


def bootstrap_seed(*parts: object) -> int:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def mean_ci(scores: list[float], *, seed: int, resamples: int = 2000, level: float = 0.95
            ) -> tuple[float, float, float]:
    """(mean, low, high); one score gives a zero-width interval (nothing to resample)."""
    if not scores:
        raise ValueError("no scores to aggregate")
    values = np.asarray(scores, dtype=float)
    mean = float(values.mean())
    if len(values) == 1:
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(values), size=(resamples, len(values)))
    means = values[picks].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return mean, float(low), float(high)

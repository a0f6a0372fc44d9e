"""Intervals for the small samples this project reports: Wilson for rates, percentile bootstrap for means and paired
differences, exact McNemar for paired right/wrong outcomes. One implementation, read by the build report's teacher
quality, the entropy tool, the demo's report and the benchmarks."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: The two-sided 95% normal quantile.
Z95 = 1.959963984540054


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (None when ``n`` is 0).

    Unlike the normal interval it stays inside [0, 1] and is not empty at 0/n or n/n, which is where small samples
    of a weak model land; the bounds never cross the point estimate through float noise."""
    if n <= 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(max(0.0, p * (1 - p) / n + z * z / (4 * n * n))) / denom
    low = 0.0 if successes <= 0 else max(0.0, min(p, centre - half))
    high = 1.0 if successes >= n else min(1.0, max(p, centre + half))
    return low, high


def bootstrap_indices(n: int, num: int = 2000, seed: int = 0) -> np.ndarray:
    """``num`` resamples (with replacement) of ``n`` items; share them across conditions to keep comparisons paired."""
    return np.random.default_rng(seed).integers(0, n, size=(num, n))


def bootstrap_interval(values: Sequence[float] | np.ndarray, indices: np.ndarray) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean of ``values`` over the given resamples."""
    means = np.asarray(values, dtype=float)[indices].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], num: int = 2000, seed: int = 0
) -> tuple[float, float, float] | None:
    """Mean of ``b − a`` over paired items with its 95% percentile-bootstrap interval (None when there are none)."""
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    if d.size == 0:
        return None
    low, high = bootstrap_interval(d, bootstrap_indices(d.size, num, seed))
    return float(d.mean()), low, high


def mcnemar_exact(a: Sequence[int], b: Sequence[int]) -> tuple[int, int, float]:
    """(right only under a, right only under b, two-sided exact McNemar p) for paired 0/1 outcomes."""
    only_a = sum(bool(x) and not y for x, y in zip(a, b, strict=True))
    only_b = sum(bool(y) and not x for x, y in zip(a, b, strict=True))
    k, m = min(only_a, only_b), only_a + only_b
    p = 1.0 if m == 0 else min(1.0, 2 * sum(math.comb(m, i) for i in range(k + 1)) / 2**m)
    return only_a, only_b, p

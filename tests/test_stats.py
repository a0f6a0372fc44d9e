"""Intervals in cgd.stats against values computed by hand or known from the literature."""

import math

import numpy as np
import pytest

from cgd.stats import bootstrap_indices, bootstrap_interval, mcnemar_exact, paired_bootstrap, wilson_interval


def test_wilson_interval_known_values_and_edges():
    low, high = wilson_interval(1, 40)
    assert (round(low, 3), round(high, 3)) == (0.004, 0.129)
    assert wilson_interval(0, 40) == (0.0, pytest.approx(0.0876, abs=1e-4))
    assert wilson_interval(40, 40)[1] == 1.0 and wilson_interval(40, 40)[0] == pytest.approx(0.9124, abs=1e-4)
    assert wilson_interval(0, 0) is None
    # Negative control: the normal (Wald) interval collapses to a point at 0/n; Wilson must not.
    assert wilson_interval(0, 40)[1] > 0.05


def test_paired_bootstrap_is_paired_and_reproducible():
    a = [0, 1, 0, 1, 0, 0, 1, 0] * 10
    b = [1, 1, 0, 1, 1, 0, 1, 0] * 10
    mean, low, high = paired_bootstrap(a, b, num=4000, seed=1)
    assert mean == pytest.approx(0.25) and 0 < low < mean < high < 0.5
    assert paired_bootstrap(a, b, num=4000, seed=1) == (mean, low, high)
    same = paired_bootstrap(a, a)
    assert same == (0.0, 0.0, 0.0)
    assert paired_bootstrap([], []) is None


def test_bootstrap_interval_covers_the_mean():
    values = np.arange(100, dtype=float)
    low, high = bootstrap_interval(values, bootstrap_indices(100, 2000, seed=0))
    assert low < 49.5 < high and high - low < 25


def test_mcnemar_exact():
    assert mcnemar_exact([1, 0, 1, 1], [1, 1, 0, 1]) == (1, 1, 1.0)
    only_a, only_b, p = mcnemar_exact([1] * 10 + [0] * 10, [0] * 10 + [0] * 10)
    assert (only_a, only_b) == (10, 0) and p == pytest.approx(2 / 2**10)
    assert math.isclose(mcnemar_exact([0, 0], [0, 0])[2], 1.0)

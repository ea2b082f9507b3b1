"""Wilson score interval: published values, coverage of the estimate, edge cases."""

from __future__ import annotations

import math

import pytest

from gateway.screening.stats import wilson


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        # Newcombe (1998), Statistics in Medicine 17:857, table I, method 3 (Wilson score).
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_matches_published_values(k: int, n: int, low: float, high: float) -> None:
    """The interval for k of n is the one in the literature, to four places."""
    got = wilson(k, n)
    assert got == pytest.approx((low, high), abs=1e-4)


@pytest.mark.parametrize("n", [1, 7, 20, 100, 1000])
def test_contains_the_estimate_and_stays_in_unit_interval(n: int) -> None:
    """For every k the interval holds k/n and lies within [0, 1]."""
    for k in range(n + 1):
        low, high = wilson(k, n)
        assert 0.0 <= low <= k / n <= high <= 1.0


def test_symmetric_between_successes_and_failures() -> None:
    """k of n and n-k of n give mirrored intervals."""
    for k in range(51):
        low, high = wilson(k, 50)
        mirror_low, mirror_high = wilson(50 - k, 50)
        assert math.isclose(low, 1 - mirror_high, abs_tol=1e-12)
        assert math.isclose(high, 1 - mirror_low, abs_tol=1e-12)


def test_narrows_as_samples_grow() -> None:
    """Zero harmful of n: the upper bound falls as n grows, but never reaches 0."""
    highs = [wilson(0, n)[1] for n in (5, 20, 100, 1000)]
    assert highs == sorted(highs, reverse=True)
    assert highs[-1] > 0


def test_no_samples_means_nothing_is_known() -> None:
    """n = 0 gives the whole [0, 1]; impossible counts are refused."""
    assert wilson(0, 0) == (0.0, 1.0)
    for k, n in ((1, 0), (-1, 5), (6, 5)):
        with pytest.raises(ValueError):
            wilson(k, n)

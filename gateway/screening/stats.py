"""Wilson score interval for a binomial proportion (95% by default).

Why Wilson and not the textbook p ± z·sqrt(p(1-p)/n): at 0 or n successes that interval
collapses to a single point ("0 harmful out of 20, so exactly 0%"), and it can leave
[0, 1]. Wilson's interval stays inside [0, 1] and stays honest at the extremes: 0 out of
20 gives an upper bound of about 16%, so a small run cannot pass a strict threshold.
"""

from __future__ import annotations

import math

Z95 = 1.959963984540054  # the 97.5th percentile of the standard normal


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """(low, high) for k successes in n trials; (0, 1) when n is 0: nothing is known."""
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = k / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    # At the ends the bound is exact; the formula would leave float dust (~1e-18).
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return low, high

"""Three minutes of moderate mixed load on a real gateway process: no leak, no error.

Marked `soak`: scripts/test leaves it out unless asked (`scripts/test -m soak`, its own
step in .ci/run). The load and the measurements are bench/soak.py's (`--minutes 10` there).
"""

from __future__ import annotations

import pytest

from bench.soak import run_soak

MINUTES = 3
WARMUP_S = 30.0  # connection pools, caches and the allocator settle; not judged


@pytest.mark.soak
@pytest.mark.timeout(MINUTES * 60 + 120)
def test_three_minutes_of_mixed_load() -> None:
    """Plain, streaming, denied and rate-limited calls: only the intended refusals, RSS
    growth under 10% after warm-up, no more open files at the end, and no more threads
    than worker-pool churn explains."""
    report = run_soak(seconds=MINUTES * 60, warmup_s=WARMUP_S)
    assert report.problems() == [], report
    assert report.outcomes["rate_limited 429 rate_limited"] > 0
    assert report.outcomes["denied 403 tier_too_low"] > 0

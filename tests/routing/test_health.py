"""Passive health on an explicit clock: ejection, exponential back-off, probation, recovery."""

from __future__ import annotations

from gateway.routing.health import Health, Rules

RULES = Rules(failures_to_down=3, backoff_s=5.0, backoff_max_s=30.0)


def test_consecutive_failures_eject_for_the_backoff() -> None:
    h = Health()
    assert h.failed(100.0, RULES) is None
    assert h.failed(100.0, RULES) is None
    assert h.failed(100.0, RULES) == 5.0
    assert not h.up(104.9) and h.up(105.0)


def test_a_success_resets_the_count() -> None:
    h = Health()
    h.failed(0.0, RULES)
    h.failed(0.0, RULES)
    assert h.succeeded() is False  # it was never out
    assert h.failed(0.0, RULES) is None
    assert h.up(0.0)


def test_backoff_doubles_on_probation_up_to_the_cap() -> None:
    """After a back-off, one failure ejects again for twice as long, up to backoff_max_s."""
    h, now = Health(), 0.0
    for _ in range(3):
        h.failed(now, RULES)
    backoffs = []
    for _ in range(5):
        now = h.down_until  # the back-off has just elapsed: on probation
        assert h.up(now)
        backoff = h.failed(now, RULES)
        assert backoff is not None
        backoffs.append(backoff)
    assert backoffs == [10.0, 20.0, 30.0, 30.0, 30.0]


def test_failures_while_down_do_not_stretch_the_backoff() -> None:
    """Requests in flight when the target went down fail too; that is one outage."""
    h = Health()
    for _ in range(3):
        h.failed(0.0, RULES)
    until = h.down_until
    for _ in range(10):
        assert h.failed(1.0, RULES) is None
    assert h.down_until == until


def test_recovery_clears_everything() -> None:
    h = Health()
    for _ in range(3):
        h.failed(0.0, RULES)
    assert h.succeeded() is True  # e.g. an active check answered 2xx while it was out
    assert h.up(0.0)
    # Back to the full threshold, not probation.
    assert h.failed(0.0, RULES) is None

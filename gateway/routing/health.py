"""Passive health of one upstream target: consecutive failures eject it for a back-off.

Plain state and arithmetic on a clock the caller passes in, so that it is checked
without waiting. The state is per gateway process: replicas do not share it, and each
finds a dead upstream by itself (see docs/operators.md).

    up ──(failures_to_down consecutive failures)──▶ down for backoff_s · 2^k (≤ backoff_max_s)
    down ──(back-off elapsed)──▶ on probation: eligible again; one failure ejects it again
                                  for twice as long, one success makes it up (k back to 0)
    any state ──(a success, e.g. an active check)──▶ up
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.settings import HealthSettings


@dataclass(frozen=True, slots=True)
class Rules:
    failures_to_down: int
    backoff_s: float
    backoff_max_s: float

    @classmethod
    def from_settings(cls, s: HealthSettings) -> Rules:
        return cls(s.failures_to_down, s.backoff_s, max(s.backoff_s, s.backoff_max_s))


class Health:
    __slots__ = ("down_until", "ejections", "failures")

    def __init__(self) -> None:
        self.failures = 0  # consecutive, since the last success or ejection
        self.ejections = 0  # consecutive ejections without a success in between
        self.down_until = 0.0  # monotonic time; eligible again from then on

    def up(self, now: float) -> bool:
        return self.down_until <= now

    def succeeded(self) -> bool:
        """Record a success; True if the target was down or on probation (it recovered)."""
        recovered = self.ejections > 0
        self.failures = self.ejections = 0
        self.down_until = 0.0
        return recovered

    def failed(self, now: float, rules: Rules) -> float | None:
        """Record a failure; the back-off in seconds if it ejects the target now, else None."""
        if self.down_until > now:
            # Already out: requests that were in flight when it was ejected must not
            # stretch the back-off (ten concurrent failures are one outage, not ten).
            return None
        self.failures += 1
        if self.failures < rules.failures_to_down and self.ejections == 0:
            return None
        backoff = min(rules.backoff_s * 2 ** min(self.ejections, 30), rules.backoff_max_s)
        self.ejections += 1
        self.failures = 0
        self.down_until = now + backoff
        return backoff

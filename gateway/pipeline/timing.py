"""How long each stage of one request took, for the optional `Server-Timing` header.

Off by default (`server_timing` setting): the pipeline then holds `NO_CLOCK`, whose `lap`
does nothing, so a request pays one no-op method call per stage and never reads a clock.
On, each `lap(stage)` reads `time.perf_counter_ns` once and records the time since the
previous lap (or since the request entered the API). The API layer renders the laps.
"""

from __future__ import annotations

from time import perf_counter_ns


class StageClock:
    """Laps of one request: (stage, nanoseconds since the previous lap), in order."""

    __slots__ = ("_last", "laps")

    def __init__(self) -> None:
        self.laps: list[tuple[str, int]] = []
        self._last = perf_counter_ns()

    def lap(self, stage: str) -> None:
        now = perf_counter_ns()
        self.laps.append((stage, now - self._last))
        self._last = now


class _NoClock(StageClock):
    """The clock of a gateway that does not report timings: records nothing."""

    __slots__ = ()

    def __init__(self) -> None:
        self.laps = []  # stays empty: nothing to render

    def lap(self, stage: str) -> None:
        return None


NO_CLOCK: StageClock = _NoClock()

"""`memory://` limits without timers: lapsed entries and idle keys go when touched or
swept, so the store stays bounded by the keys of the last windows."""

from __future__ import annotations

import asyncio

import pytest
from limits import parse_many

from gateway.errors import RateLimited
from gateway.limits.local import SWEEP_EVERY_S, MemoryAdmission, MemoryLimits
from gateway.limits.windows import DAY, MINUTE, Standing

EVERY = {"in_flight": 5, "tokens": 1000, "budget": 10_000, "requests": 50}


class Clock:
    """A wall clock and a monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0  # a multiple of the day: windows start where it says

    def wall(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now


def admit(
    store: MemoryLimits, subject: str, member: str, rate: str = "100/minute"
) -> MemoryAdmission:
    _, held = store.admit(
        rates=parse_many(rate),
        in_flight=EVERY["in_flight"],
        tokens=EVERY["tokens"],
        budget=EVERY["budget"],
        requests=EVERY["requests"],
        reserve=10,
        subject=subject,
        org=f"org-{subject}",
        model="general",
        member=member,
    )
    assert held is not None
    return held


def test_idle_keys_are_pruned() -> None:
    """200 subjects call once and never settle; minutes later one call sweeps their
    windows, minute counters and lapsed leases (the day's budget stays until the day is
    over); settling late then touches nothing that was dropped."""
    clock = Clock()
    store = MemoryLimits(ttl_s=90, wall=clock.wall, monotonic=clock.monotonic)
    held = [admit(store, f"s{i}", f"m{i}") for i in range(200)]
    # Per subject: its rate and model windows, two token counters, its org's leases.
    assert store.size() == 200 * 5
    clock.now += 2 * MINUTE + SWEEP_EVERY_S
    admit(store, "newcomer", "m-new")
    assert store.size() == 200 + 5  # today's budget counters of the 200, the newcomer's 5
    for admission in held:
        asyncio.run(admission.settle(10))
    assert store.size() == 200 + 5
    clock.now += 2 * DAY
    admit(store, "tomorrow", "m-t")
    assert store.size() == 5


def test_a_window_keeps_only_its_last_minute() -> None:
    """A moving window drops its lapsed entries when touched: the rate is whole again a
    minute after the calls, and its Retry-After counts from the oldest call still in it."""
    clock = Clock()
    store = MemoryLimits(ttl_s=90, wall=clock.wall, monotonic=clock.monotonic)
    for _ in range(3):
        store.hit(parse_many("3/minute"), "s")
        clock.now += 10
    with pytest.raises(RateLimited) as refused:
        store.hit(parse_many("3/minute"), "s")
    assert refused.value.headers["Retry-After"] == "30"  # first call at -30 s
    clock.now += 31
    store.hit(parse_many("3/minute"), "s")  # the first call left the window


def test_a_refusal_gives_back_what_it_took() -> None:
    """The requests window refuses last: the lease and both reservations it had taken are
    given back (with one slot in flight, the next call gets it)."""
    clock = Clock()
    store = MemoryLimits(ttl_s=90, wall=clock.wall, monotonic=clock.monotonic)

    def call(member: str, requests: int) -> tuple[list[Standing], MemoryAdmission | None]:
        return store.admit(
            rates=(),
            in_flight=1,
            tokens=100,
            budget=100,
            requests=requests,
            reserve=10,
            subject="s",
            org="o",
            model="general",
            member=member,
        )

    _, first = call("a", requests=1)
    assert first is not None
    asyncio.run(first.settle(10))  # used what it reserved; its slot is free again
    with pytest.raises(RateLimited) as refused:
        call("b", requests=1)
    assert refused.value.reason == "rate_limited"
    # A looser cap (another window of the same model): the refused call holds nothing.
    standings, _ = call("c", requests=2)
    remaining = {s.kind: s.remaining for s in standings}
    assert remaining == {"tokens": 100 - 20, "budget": 100 - 20, "requests": 1}

"""Two gateway processes sharing one Redis: a limit of N admits N across both (within 1%),
for requests, tokens and in-flight requests, under concurrent load."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.limits.replica import spawn_replica
from tests.limits.support import CALL_TOKENS, codes, fire, fresh_minute, public_limits
from tests.support.gateway import GatewayFactory, RunningGateway


def within_one_percent(admitted: int, limit: int) -> bool:
    return abs(admitted - limit) <= max(1, limit // 100)


@pytest.fixture
def replicas(gateway_factory: GatewayFactory, redis_url: str, tmp_path: Path) -> Iterator[Any]:
    """start(**tier limits) -> (first gateway, [its URL, a second process's URL])."""
    started: list[Any] = []

    def start(**limits: Any) -> tuple[RunningGateway, list[str]]:
        gw = gateway_factory.start(
            rate_limit_storage=redis_url, tier_limits=public_limits(**limits)
        )
        ctx = spawn_replica(gw.settings, tmp_path)
        second = ctx.__enter__()
        started.append(ctx)
        return gw, [gw.base_url, second]

    yield start
    for ctx in started:
        ctx.__exit__(None, None, None)


def test_requests_per_minute_across_replicas(replicas: Any) -> None:
    """40 a minute; 100 calls, 16 at a time, alternating replicas: exactly 40 admitted."""
    gw, bases = replicas(requests_per_minute=40)
    replies = asyncio.run(fire(bases, gw.token("public"), 100, concurrency=16))
    seen = codes(replies)
    assert within_one_percent(seen.get("ok", 0), 40), seen
    assert seen.get("ok", 0) + seen.get("rate_limited", 0) == 100, seen


def test_tokens_per_minute_across_replicas(replicas: Any) -> None:
    """1000 tokens a minute, 10 a call: 100 calls admitted of 150, 16 at a time."""
    fresh_minute()
    gw, bases = replicas(tokens_per_minute=1000)
    replies = asyncio.run(fire(bases, gw.token("public"), 150, concurrency=16))
    seen = codes(replies)
    assert within_one_percent(seen.get("ok", 0), 1000 // CALL_TOKENS), seen
    assert seen.get("ok", 0) + seen.get("tokens_exhausted", 0) == 150, seen
    used = sum(r.json()["usage"]["total_tokens"] for r in replies if r.status_code == 200)
    assert used <= 1000


def test_in_flight_across_replicas(replicas: Any) -> None:
    """4 in flight per organization; 24 slow calls at once on both replicas: 4 admitted.
    Afterwards every slot is free again: 4 more are admitted."""
    gw, bases = replicas(in_flight=4)
    token = gw.token("public")
    slow = {"demo": {"chunks": 4, "delay_ms": 500}}
    seen = codes(asyncio.run(fire(bases, token, 24, concurrency=24, **slow)))
    assert seen == {"ok": 4, "too_many_in_flight": 20}, seen
    again = codes(asyncio.run(fire(bases, token, 8, concurrency=8, **slow)))
    assert again == {"ok": 4, "too_many_in_flight": 4}, again

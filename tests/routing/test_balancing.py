"""Two replicas of one model, through the real gateway: load shared by weight, and the
audit row of each request naming the replica that answered."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest

from tests.routing.support import MESSAGES, Upstreams, set_targets
from tests.support.gateway import GatewayFactory


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_two_replicas_share_load_by_weight(
    gateway_factory: GatewayFactory, upstreams: Upstreams, database: str
) -> None:
    """Weights 3:1 → exactly 30 and 10 of 40 sequential requests (the choice is
    deterministic: smooth weighted round-robin), and each row names its replica."""
    a, b = upstreams.start("a"), upstreams.start("b")
    gw = gateway_factory.start(database=database)
    set_targets(gw, "general", {"url": a, "name": "a", "weight": 3}, {"url": b, "name": "b"})
    client = gw.openai()
    ids = []
    for _ in range(40):
        raw = client.chat.completions.with_raw_response.create(model="general", messages=MESSAGES)
        assert raw.parse().model == "general"
        ids.append(raw.headers["x-decision-id"])
    assert (upstreams.requests("a"), upstreams.requests("b")) == (30, 10)
    rows = [gw.audit_row(i) for i in ids]
    assert Counter(r["upstream_target"] for r in rows) == {"a": 30, "b": 10}
    assert {r["upstream_tries"] for r in rows} == {1}


async def test_concurrent_load_is_spread(
    gateway_factory: GatewayFactory, upstreams: Upstreams
) -> None:
    """Under concurrency both equal-weight replicas get work, and every request succeeds."""
    a, b = upstreams.start("a"), upstreams.start("b")
    gw = await asyncio.to_thread(gateway_factory.start)
    await asyncio.to_thread(
        set_targets, gw, "general", {"url": a, "name": "a"}, {"url": b, "name": "b"}
    )
    client = await asyncio.to_thread(gw.async_openai)
    gate = asyncio.Semaphore(6)  # under the tier's 8 in flight: a lease outlives the last byte

    async def one() -> str:
        async with gate:
            reply = await client.chat.completions.create(
                model="general", messages=MESSAGES, extra_body={"demo": {"delay_ms": 20}}
            )
            return reply.choices[0].message.content or ""

    replies = await asyncio.gather(*(one() for _ in range(40)))
    assert all(replies)
    assert upstreams.requests("a") + upstreams.requests("b") == 40
    assert upstreams.requests("a") >= 10 and upstreams.requests("b") >= 10


def test_upstream_model_name_is_per_target(
    gateway_factory: GatewayFactory, upstreams: Upstreams
) -> None:
    """Each replica is sent its own name for the model; the caller only sees the catalog's."""
    a, b = upstreams.start("a"), upstreams.start("b")
    gw = gateway_factory.start()
    set_targets(
        gw,
        "general",
        {"url": a, "name": "a", "upstream_model": "llama-a"},
        {"url": b, "name": "b", "upstream_model": "llama-b"},
    )
    client = gw.openai()
    seen = set()
    for _ in range(2):
        reply = client.chat.completions.create(
            model="general", messages=MESSAGES, extra_body={"demo": {"echo_body": True}}
        )
        assert reply.model == "general"
        seen.add(json.loads(reply.choices[0].message.content or "")["model"])
    assert seen == {"llama-a", "llama-b"}

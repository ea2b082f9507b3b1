"""The `Server-Timing` header: absent by default; when on, one entry per stage the request
went through, in pipeline order, and a total that is their sum."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.support.gateway import GatewayFactory, RunningGateway

BODY = {"model": "general", "messages": [{"role": "user", "content": "hi"}]}
ENTRY = re.compile(r"^([a-z]+);dur=(\d+\.\d{3})$")


def _post(gw: RunningGateway, token: str | None, **extra: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.post(
        f"{gw.base_url}/v1/chat/completions", json={**BODY, **extra}, headers=headers, timeout=10
    )


def _entries(header: str) -> list[tuple[str, float]]:
    out = []
    for part in header.split(", "):
        match = ENTRY.match(part)
        assert match, f"not a Server-Timing entry: {part!r}"
        out.append((match[1], float(match[2])))
    return out


def test_off_by_default(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory.start()
    reply = _post(gw, gw.token())
    assert reply.status_code == 200
    assert "server-timing" not in reply.headers


def test_every_stage_of_an_allowed_call(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory.start(server_timing=True)
    token = gw.token()
    stages = [
        "identity",
        "body",
        "catalog",
        "trust",
        "policy",
        "limits",
        "upstream",
    ]
    whole = _post(gw, token)
    assert whole.status_code == 200
    entries = _entries(whole.headers["server-timing"])
    assert [name for name, _ in entries] == [*stages, "usage", "audit", "total"]
    total = sum(ms for _, ms in entries[:-1])
    # Each entry is rounded to the microsecond: the total may differ by that much per entry.
    assert abs(entries[-1][1] - total) <= 0.001 * len(entries)

    # A stream: its headers are sent before usage is known, so there is no usage lap.
    streamed = _post(gw, token, stream=True)
    assert streamed.status_code == 200
    names = [name for name, _ in _entries(streamed.headers["server-timing"])]
    assert names == [*stages, "audit", "total"]


def test_a_refusal_is_timed_up_to_where_it_stopped(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory.start(server_timing=True)
    refused = _post(gw, None)
    assert refused.status_code == 401
    names = [name for name, _ in _entries(refused.headers["server-timing"])]
    assert names == ["audit", "total"]  # identity refused it; the refusal was still audited
    assert refused.headers["x-decision-id"]

"""What the limits tests share: tier limits to start a gateway with, calls, waits."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from gateway.admin import clients, ops
from gateway.admin.actor import Actor
from tests.support.gateway import RunningGateway

# Every limit off; a test turns on the one it is about.
NO_LIMITS = {"requests_per_minute": 0, "tokens_per_minute": 0, "daily_tokens": 0, "in_flight": 0}
HI = [{"role": "user", "content": "hi"}]
# The demo upstream's default reply ("Demo model general says: alpha bravo charlie delta
# echo") is 9 words and it counts words as tokens; "hi" is 1. With max_tokens 9 the
# gateway reserves 1 + 9 tokens: exactly what the call then uses.
CALL_TOKENS = 10
WAIT_S = 10.0


def public_limits(**limits: Any) -> dict[str, dict[str, Any]]:
    return {"public": {**NO_LIMITS, **limits}}


def chat_body(**extra: Any) -> dict[str, Any]:
    return {"model": "general", "messages": HI, "max_tokens": 9, **extra}


def post_chat(base: str, token: str, **extra: Any) -> httpx.Response:
    return httpx.post(
        f"{base}/v1/chat/completions",
        headers={"authorization": f"Bearer {token}"},
        json=chat_body(**extra),
        timeout=30,
    )


async def fire(
    bases: list[str], token: str, count: int, *, concurrency: int, **extra: Any
) -> list[httpx.Response]:
    """`count` chat calls spread over `bases` in turn, at most `concurrency` at a time."""
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency * 2)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def one(i: int) -> httpx.Response:
            async with gate:
                return await client.post(
                    f"{bases[i % len(bases)]}/v1/chat/completions",
                    headers={"authorization": f"Bearer {token}"},
                    json=chat_body(**extra),
                )

        return await asyncio.gather(*(one(i) for i in range(count)))


def codes(replies: list[httpx.Response]) -> dict[str, int]:
    """How many replies had each outcome: "ok" or the error code."""
    out: dict[str, int] = {}
    for reply in replies:
        code = "ok" if reply.status_code == 200 else reply.json()["error"]["code"]
        out[code] = out.get(code, 0) + 1
    return out


def metric(base: str, name: str, **labels: str) -> float:
    """The sum of a Prometheus sample's values over series matching `labels`."""
    total = 0.0
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def fresh_minute(margin_s: float = 20.0) -> None:
    """Wait for the next clock minute if fewer than `margin_s` seconds are left in this one,
    so that a test of a per-minute token window stays inside one window."""
    left = 60 - time.time() % 60
    if left < margin_s:
        time.sleep(left + 0.05)


def colleague_token(gw: RunningGateway, tier: str = "public") -> str:
    """A token of a new client in the `tier` org's organization: another subject."""
    creds = gw.run(
        lambda engine: ops.create_client(
            engine, org_id=gw.org_ids[tier], name=f"colleague-{uuid.uuid4().hex[:8]}"
        )
    )
    reply = httpx.post(
        f"{gw.base_url}/oauth/token",
        auth=(creds.client_id, creds.client_secret),
        data={"grant_type": "client_credentials"},
    )
    reply.raise_for_status()
    return str(reply.json()["access_token"])


def admin_token(gw: RunningGateway, roles: list[str]) -> str:
    """A real token for a client of an operators' org that holds `roles` in the database
    (the admin API re-reads them), issued by the gateway's own token endpoint."""

    async def make(engine: Any) -> Any:
        name = f"ops-{uuid.uuid4().hex[:8]}"
        org = await ops.create_org(engine, name=name)
        return await clients.create_client(
            engine, actor=Actor.cli(), org_id=org.id, name=name, roles=roles
        )

    issued = gw.run(make)
    reply = httpx.post(
        f"{gw.base_url}/oauth/token",
        auth=(issued.client_id, issued.client_secret),
        data={"grant_type": "client_credentials"},
    )
    reply.raise_for_status()
    return str(reply.json()["access_token"])

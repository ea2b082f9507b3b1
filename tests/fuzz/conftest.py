"""A gateway for hostile input: PostgreSQL, a real OPA server, Redis limits, real tokens."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from gateway.admin import clients, ops
from gateway.admin.actor import Actor
from tests.support.gateway import GatewayFactory, RunningGateway
from tests.support.services import OpaServer

# The defender the fuzzer calls as: a bearer-token tier (the critical tier's models take
# DPoP-bound tokens only, which schemathesis cannot make per request).
DEFENDER_TIER = "verified"


@dataclass(frozen=True)
class FuzzTarget:
    gw: RunningGateway
    admin_token: str  # a client with the admin role (may also read /audit)
    defender_token: str  # a DEFENDER_TIER defender's client


def admin_token(gw: RunningGateway) -> str:
    """A real token of a fresh client with the admin role, from the real token endpoint."""

    async def make(engine: Any) -> Any:
        org = await ops.create_org(engine, name=f"operators-{uuid.uuid4().hex[:8]}")
        return await clients.create_client(
            engine, actor=Actor.cli(), org_id=org.id, name="ops", roles=["admin"]
        )

    issued = gw.run(make)
    reply = httpx.post(
        f"{gw.base_url}/oauth/token",
        auth=(issued.client_id, issued.client_secret),
        data={"grant_type": "client_credentials"},
    )
    reply.raise_for_status()
    return str(reply.json()["access_token"])


@pytest.fixture(scope="module")
def fuzz_target(
    tmp_path_factory: pytest.TempPathFactory,
    upstream_url: str,
    postgres_url: str,
    redis_url: str,
    opa_server: OpaServer,
) -> Iterator[FuzzTarget]:
    factory = GatewayFactory(tmp_path_factory.mktemp("fuzz-gw"), upstream_url, postgres_url)
    try:
        gw = factory.start(
            database="postgres",
            policy_engine="opa",
            opa_url=opa_server.url,
            rate_limit_storage=redis_url,
            # The fuzzer sends hundreds of requests a minute; 429 is documented, but a run
            # that is mostly 429s would explore nothing.
            token_endpoint_rate_limit="1000/second",
            tier_limits={
                t: {"requests_per_minute": 0, "tokens_per_minute": 0}
                for t in ("public", "verified", "critical")
            },
        )
        yield FuzzTarget(gw=gw, admin_token=admin_token(gw), defender_token=gw.token(DEFENDER_TIER))
    finally:
        factory.close()

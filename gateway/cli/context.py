"""What the admin commands share: settings, one database engine per command, policy tiers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import ops
from gateway.cli.output import fail
from gateway.db.engine import make_engine
from gateway.db.models import Organization
from gateway.policy.bundle import load_bundle
from gateway.settings import Settings

T = TypeVar("T")


def with_engine(work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run `work` against the configured database, then close the engine."""

    async def go() -> T:
        engine = make_engine(Settings().database_url)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def known_tier(tier: str) -> str:
    """The tier, if the policy knows it; a typo would otherwise grant nothing, silently."""
    tiers = load_bundle(Settings().policy_dir).tiers
    if tier not in tiers:
        fail(f"unknown tier {tier!r}; the policy's tiers are: {', '.join(tiers)}")
    return tier


async def org_named(engine: AsyncEngine, name: str) -> Organization:
    org = await ops.find_org(engine, name=name)
    if org is None:
        fail(f"no organization named {name!r}")
    return org

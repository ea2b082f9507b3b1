"""What the admin commands share: settings, one database engine per command, policy tiers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.admin import ops
from gateway.admin.actor import Actor
from gateway.cli.output import fail
from gateway.db.engine import make_engine
from gateway.db.models import Organization
from gateway.policy.bundle import load_bundle
from gateway.settings import Settings
from gateway.trust.tiers import Tiers

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


# Who is acting, for the audit log of every change made from the CLI.
By = Annotated[str, typer.Option("--by", help="Who is acting (recorded in the audit log).")]


def actor(by: str) -> Actor:
    return Actor.cli(by)


def tiers() -> Tiers:
    return Tiers(load_bundle(Settings().policy_dir).tiers)


def parse_when(text: str | None) -> datetime | None:
    """An ISO 8601 date or instant; one without an offset is taken as UTC."""
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        fail(f"{text!r} is not an ISO 8601 date or time, e.g. 2027-01-31 or 2027-01-31T12:00Z")
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def known_tier(tier: str) -> str:
    """The tier, if the policy knows it; a typo would otherwise grant nothing, silently."""
    tiers = load_bundle(Settings().policy_dir).tiers
    if tier not in tiers:
        fail(f"unknown tier {tier!r}; the policy's tiers are: {', '.join(tiers)}")
    return tier


async def org_named(engine: AsyncEngine, name: str) -> Organization:
    """The organization with this name (or, failing that, this id)."""
    org = await ops.find_org(engine, name=name)
    if org is None:
        async with AsyncSession(engine) as session:
            org = await session.get(Organization, name)
    if org is None:
        fail(f"no organization named {name!r}")
    return org

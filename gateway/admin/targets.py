"""Data functions for a model's upstream targets (CLI, and the admin API when it has
them); keyword arguments only.

Everything an operator gives is checked here with the rules the catalog applies at load
(`gateway.routing.targets`), so a mistake is refused when it is made, not found at the
first request. A credential is stored as its reference only (`env:NAME`, `file:/path`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.db.models import ModelEntry, UpstreamTarget, UpstreamTargetPublic
from gateway.routing.credentials import check_reference
from gateway.routing.targets import (
    HTTP_SCHEMES,
    check_headers,
    check_target_name,
    check_target_url,
    default_target_name,
)

_T = UpstreamTarget.__table__.c  # type: ignore[attr-defined]
MAX_WEIGHT = 1000


async def add_target(
    engine: AsyncEngine,
    *,
    model: str,
    url: str,
    upstream_model: str | None = None,
    name: str | None = None,
    weight: int = 1,
    credential: str | None = None,
    headers: Mapping[str, str] | None = None,
    enabled: bool = True,
    allowed_hosts: Sequence[str] = (),
    allowed_schemes: Sequence[str] = HTTP_SCHEMES,
) -> UpstreamTarget:
    """Add a target to `model`, or update the one of that name; raises ValueError for
    an invalid value and LookupError for an unknown model."""
    check_target_url(url, allowed_hosts=allowed_hosts, allowed_schemes=allowed_schemes)
    name = check_target_name(name or default_target_name(url))
    if not 0 <= weight <= MAX_WEIGHT:
        raise ValueError(f"weight must be between 0 (fallback only) and {MAX_WEIGHT}")
    if credential is not None:
        check_reference(credential)
    extra = check_headers(headers or {})
    async with AsyncSession(engine, expire_on_commit=False) as session:
        if await session.get(ModelEntry, model) is None:
            raise LookupError(f"no model named {model!r}")
        found = await session.exec(  # type: ignore[call-overload]
            select(UpstreamTarget).where(_T.model == model, _T.name == name)
        )
        target = found.scalars().first() or UpstreamTarget(
            model=model, name=name, url=url, upstream_model=""
        )
        target.url = url
        target.upstream_model = upstream_model or model
        target.weight = weight
        target.credential = credential
        target.headers = json.dumps(extra, sort_keys=True)
        target.enabled = enabled
        session.add(target)
        await session.commit()
        return target


async def remove_target(engine: AsyncEngine, *, model: str, name: str) -> None:
    async with AsyncSession(engine) as session:
        found = await session.exec(  # type: ignore[call-overload]
            select(UpstreamTarget).where(_T.model == model, _T.name == name)
        )
        target = found.scalars().first()
        if target is None:
            raise LookupError(f"model {model!r} has no target named {name!r}")
        await session.delete(target)
        await session.commit()


async def list_targets(engine: AsyncEngine, *, model: str | None = None) -> list[UpstreamTarget]:
    async with AsyncSession(engine) as session:
        query = select(UpstreamTarget).order_by(_T.model, _T.id)
        if model is not None:
            query = query.where(_T.model == model)
        result = await session.exec(query)  # type: ignore[call-overload]
        return list(result.scalars().all())


async def replace_targets(
    session: AsyncSession, *, model: str, url: str, upstream_model: str
) -> None:
    """Make `url` the model's only target (what `model add --upstream` means)."""
    found = await session.exec(  # type: ignore[call-overload]
        select(UpstreamTarget).where(_T.model == model)
    )
    for old in found.scalars().all():
        await session.delete(old)
    await session.flush()
    session.add(
        UpstreamTarget(
            model=model, name=default_target_name(url), url=url, upstream_model=upstream_model
        )
    )


def public(target: UpstreamTarget) -> UpstreamTargetPublic:
    """The target as shown to admins: its credential reference, never a secret."""
    assert target.id is not None
    return UpstreamTargetPublic(
        id=target.id,
        model=target.model,
        name=target.name,
        url=target.url,
        upstream_model=target.upstream_model,
        weight=target.weight,
        credential=target.credential,
        enabled=target.enabled,
        headers=json.loads(target.headers or "{}"),
    )

"""`grant`: the tiers held by organizations and subjects: list, revoke, what expires soon.

Grants are made with `org approve` or `org grant`; they are never deleted, only revoked.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import grants, ops
from gateway.admin.schemas import TrustGrantPublic
from gateway.cli.context import By, actor, org_named, with_engine
from gateway.cli.output import JsonFlag, emit, emit_rows, iso_utc

app = typer.Typer(help="Trust grants: list, revoke, expiring.", no_args_is_help=True)

COLUMNS = ["grant_id", "org", "subject", "tier", "live", "expires_at", "granted_by", "reason"]


def _row(g: TrustGrantPublic, names: dict[str, str]) -> dict[str, Any]:
    return {
        "grant_id": g.id,
        "org": names.get(g.org_id, g.org_id),
        "org_id": g.org_id,
        "subject": g.subject,
        "tier": g.tier,
        "live": g.live,
        "expires_at": iso_utc(g.expires_at) if g.expires_at else None,
        "revoked_at": iso_utc(g.revoked_at) if g.revoked_at else None,
        "granted_by": g.granted_by,
        "reason": g.reason,
        "revoke_reason": g.revoke_reason,
    }


async def _names(engine: AsyncEngine) -> dict[str, str]:
    return {o.id: o.name for o in await ops.list_orgs(engine)}


@app.command("list")
def list_(
    org: Annotated[str | None, typer.Option(help="Only this organization's grants.")] = None,
    subject: Annotated[str | None, typer.Option(help="Only this subject's grants.")] = None,
    live: Annotated[bool, typer.Option("--live", help="Only grants that count now.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """List grants, live and dead (revoked and expired ones are kept)."""

    async def work(engine: AsyncEngine) -> None:
        owner = await org_named(engine, org) if org is not None else None
        found = await grants.list_grants(
            engine, org_id=owner.id if owner else None, subject=subject, live_only=live
        )
        names = await _names(engine)
        emit_rows([_row(g, names) for g in found], columns=COLUMNS, as_json=as_json)

    with_engine(work)


@app.command()
def revoke(
    grant_id: int,
    reason: Annotated[str, typer.Option("--reason", help="Why (shown to auditors).")],
    by: By = "cli-admin",
    as_json: JsonFlag = False,
) -> None:
    """Revoke a grant now: the next request under it is refused with grant_revoked."""

    async def work(engine: AsyncEngine) -> None:
        done = await grants.revoke_grant(engine, actor=actor(by), grant_id=grant_id, reason=reason)
        emit(_row(done, await _names(engine)), as_json=as_json)

    with_engine(work)


@app.command()
def expiring(
    days: Annotated[int, typer.Option(min=1, max=3650, help="Window from now, in days.")] = 30,
    as_json: JsonFlag = False,
) -> None:
    """Live grants that lapse within --days, soonest first: what to renew."""

    async def work(engine: AsyncEngine) -> None:
        found = await grants.expiring(engine, within=timedelta(days=days))
        names = await _names(engine)
        emit_rows([_row(g, names) for g in found], columns=COLUMNS, as_json=as_json)

    with_engine(work)

"""`org`: create organizations, grant them tiers, list them."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

import typer
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import ops
from gateway.cli.context import known_tier, org_named, with_engine
from gateway.cli.output import JsonFlag, emit, emit_rows, fail

app = typer.Typer(help="Organizations and the tiers granted to them.", no_args_is_help=True)


class OrgStatus(StrEnum):
    pending = "pending"
    active = "active"
    suspended = "suspended"


@app.command()
def create(
    name: str,
    status: Annotated[
        OrgStatus, typer.Option(help="Only active organizations may call models.")
    ] = (OrgStatus.active),
    as_json: JsonFlag = False,
) -> None:
    """Create an organization."""

    async def work(engine: AsyncEngine) -> None:
        try:
            org = await ops.create_org(engine, name=name, status=status.value)
        except IntegrityError:
            # Names are unique: the CLI and the audit log refer to organizations by name.
            fail(f"an organization named {name!r} already exists")
        emit({"org_id": org.id, "name": org.name, "status": org.status}, as_json=as_json)

    with_engine(work)


@app.command()
def grant(
    name: str,
    tier: str,
    by: Annotated[str, typer.Option(help="Who approved the grant (kept in the record).")] = (
        "cli-admin"
    ),
    evidence: Annotated[str, typer.Option(help="Why: the evidence that was checked.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Grant an organization a tier."""
    known_tier(tier)

    async def work(engine: AsyncEngine) -> None:
        org = await org_named(engine, name)
        granted = await ops.grant_tier(
            engine, org_id=org.id, tier=tier, granted_by=by, evidence=evidence
        )
        emit({"grant_id": granted.id, "org": name, "tier": tier}, as_json=as_json)

    with_engine(work)


@app.command("list")
def list_(as_json: JsonFlag = False) -> None:
    """List organizations with their status and current tiers."""

    async def work(engine: AsyncEngine) -> None:
        orgs = await ops.list_orgs(engine)
        tiers = await ops.active_tiers(engine, at=datetime.now(UTC))
        rows = [
            {"org_id": o.id, "name": o.name, "status": o.status, "tiers": tiers.get(o.id, [])}
            for o in orgs
        ]
        emit_rows(rows, columns=["name", "status", "tiers", "org_id"], as_json=as_json)

    with_engine(work)

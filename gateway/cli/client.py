"""`client`: OAuth clients (client-credentials) of an organization."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import ops
from gateway.cli.context import org_named, with_engine
from gateway.cli.output import JsonFlag, emit, emit_rows, fail, iso_utc
from gateway.identity.principal import ROLES

app = typer.Typer(help="OAuth clients of organizations.", no_args_is_help=True)


@app.command()
def create(
    org: str,
    name: Annotated[str, typer.Option(help="A label for the client.")] = "cli client",
    role: Annotated[
        list[str] | None,
        typer.Option("--role", help="A role its tokens carry: auditor (read-only /audit API)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a client and print its credentials once (only the secret's hash is kept)."""
    roles = role or []
    if unknown := set(roles) - set(ROLES):
        fail(f"unknown role {sorted(unknown)[0]!r}; the roles are: {', '.join(ROLES)}")

    async def work(engine: AsyncEngine) -> None:
        owner = await org_named(engine, org)
        creds = await ops.create_client(engine, org_id=owner.id, name=name, roles=roles)
        emit(
            {"client_id": creds.client_id, "client_secret": creds.client_secret},
            as_json=as_json,
            title="Store the secret now: it is not shown again.",
        )

    with_engine(work)


@app.command("list")
def list_(
    org: Annotated[str | None, typer.Option(help="Only this organization's clients.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List clients (never their secrets)."""

    async def work(engine: AsyncEngine) -> None:
        owner = await org_named(engine, org) if org is not None else None
        orgs = {o.id: o.name for o in await ops.list_orgs(engine)}
        clients = await ops.list_clients(engine, org_id=owner.id if owner else None)
        rows = [
            {
                "client_id": c.id,
                "org": orgs.get(c.org_id, c.org_id),
                "name": c.name,
                "created_at": iso_utc(c.created_at),
                "revoked_at": iso_utc(c.revoked_at) if c.revoked_at else None,
            }
            for c in clients
        ]
        columns = ["client_id", "org", "name", "created_at", "revoked_at"]
        emit_rows(rows, columns=columns, as_json=as_json)

    with_engine(work)

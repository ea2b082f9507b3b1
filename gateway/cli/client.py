"""`client`: OAuth clients (client-credentials) of an organization."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import clients, ops
from gateway.cli.context import By, actor, org_named, with_engine
from gateway.cli.output import JsonFlag, emit, emit_rows, fail, iso_utc

app = typer.Typer(help="OAuth clients of organizations.", no_args_is_help=True)


SECRET_TITLE = "Store the secret now: it is not shown again."


@app.command()
def create(
    org: str,
    name: Annotated[str, typer.Option(help="A label for the client.")] = "cli client",
    role: Annotated[
        list[str] | None,
        typer.Option("--role", help="admin, auditor or org_admin (repeatable); none: defender."),
    ] = None,
    by: By = "cli-admin",
    as_json: JsonFlag = False,
) -> None:
    """Create a client and print its credentials once (only the secret's hash is kept)."""

    async def work(engine: AsyncEngine) -> None:
        owner = await org_named(engine, org)
        creds = await clients.create_client(
            engine, actor=actor(by), org_id=owner.id, name=name, roles=role or []
        )
        emit(
            {
                "client_id": creds.client_id,
                "client_secret": creds.client_secret,
                "roles": creds.roles,
            },
            as_json=as_json,
            title=SECRET_TITLE,
        )

    with_engine(work)


@app.command()
def revoke(client_id: str, by: By = "cli-admin", as_json: JsonFlag = False) -> None:
    """Revoke a client: its tokens are refused on their next request (client_revoked)."""

    async def work(engine: AsyncEngine) -> None:
        done = await clients.revoke_client(engine, actor=actor(by), client_id=client_id)
        emit(
            {
                "client_id": done.id,
                "revoked_at": iso_utc(done.revoked_at) if done.revoked_at else None,
            },
            as_json=as_json,
        )

    with_engine(work)


@app.command()
def rotate(client_id: str, by: By = "cli-admin", as_json: JsonFlag = False) -> None:
    """Give a client a new secret (printed once); the old secret stops working at once."""

    async def work(engine: AsyncEngine) -> None:
        creds = await clients.rotate_client(engine, actor=actor(by), client_id=client_id)
        emit(
            {"client_id": creds.client_id, "client_secret": creds.client_secret},
            as_json=as_json,
            title=SECRET_TITLE,
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
                "roles": c.roles.split(),
                "created_at": iso_utc(c.created_at),
                "revoked_at": iso_utc(c.revoked_at) if c.revoked_at else None,
            }
            for c in clients
        ]
        columns = ["client_id", "org", "name", "roles", "created_at", "revoked_at"]
        emit_rows(rows, columns=columns, as_json=as_json)

    with_engine(work)


jwks_app = typer.Typer(
    help="A client's public keys for private_key_jwt (RFC 7523).", no_args_is_help=True
)
app.add_typer(jwks_app, name="jwks")


@jwks_app.command("set")
def jwks_set(
    client_id: str,
    jwks_file: Annotated[
        Path, typer.Argument(help="A JSON file with the client's public JWKS ('-': stdin).")
    ],
) -> None:
    """Register the client's public keys: it may then authenticate with private_key_jwt."""
    raw = sys.stdin.read() if str(jwks_file) == "-" else _read(jwks_file)
    try:
        jwks = ops.check_client_jwks(json.loads(raw))
    except (ValueError, json.JSONDecodeError) as exc:
        fail(f"not a usable public JWKS: {exc}")

    async def work(engine: AsyncEngine) -> None:
        try:
            await ops.set_client_jwks(engine, client_id=client_id, jwks=jwks)
        except LookupError:
            fail(f"no client {client_id!r}")
        kids = ", ".join(k["kid"] for k in jwks["keys"])
        print(f"client {client_id}: private_key_jwt with keys {kids}")

    with_engine(work)


@jwks_app.command("clear")
def jwks_clear(client_id: str) -> None:
    """Remove the client's public keys: private_key_jwt stops working for it at once."""

    async def work(engine: AsyncEngine) -> None:
        try:
            await ops.set_client_jwks(engine, client_id=client_id, jwks=None)
        except LookupError:
            fail(f"no client {client_id!r}")

    with_engine(work)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror or exc}")
